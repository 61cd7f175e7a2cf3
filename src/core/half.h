/* IEEE 754 half precision (float16) to float32, for model files that store weights so
 * (TFJS float16 quantization, ONNX FLOAT16 tensors). */
#ifndef MIEN_CORE_HALF_H
#define MIEN_CORE_HALF_H

#include <stdint.h>

float mien_half_to_float(uint16_t h);

#endif
