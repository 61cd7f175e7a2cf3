/* TensorFlow Lite models (.tflite flatbuffers, schema version 3) loaded into the graph IR for
 * one concrete input shape. TFLite is NHWC like the IR, so tensors keep their layout: the
 * graph's input and outputs are exactly the model's.
 *
 * Supported: float32 models (activations float32), constants stored as float32, float16 or
 * int8/uint8/int16 with quantization scales (dequantized when loading, per tensor or per
 * axis), the DEQUANTIZE ops that float16 files use, and the builtin ops listed in tflite.c
 * (convolutions, depthwise, fully connected, elementwise math and comparisons, activations,
 * pools, concat, reshape/squeeze/expand_dims, transpose, pad, slice/strided slice, softmax,
 * reductions, resize, L2 normalization, cast). Fully quantized models (int8 activations),
 * custom ops and control flow are refused with a message naming the op.
 *
 * Hostile files: the flatbuffer is read by nn/flatbuf.c, which checks every offset and
 * length against the file size; the loader checks every count, shape, index and option, and
 * bounds what a file can make the library allocate (the caps below, each named in its error
 * message), besides the graph's own limits (NN_MAX_ELEMS per tensor; NN_MAX_ARENA_BYTES of
 * activations when run, graph.h). */
#ifndef MIEN_NN_TFLITE_H
#define MIEN_NN_TFLITE_H

#include "nn/graph.h"

/* Largest .tflite file accepted. */
#ifndef NN_TFLITE_MAX_FILE
#define NN_TFLITE_MAX_FILE ((size_t)1 << 30)
#endif
/* Most tensors, and most operators, in the model's main subgraph. */
#ifndef NN_TFLITE_MAX_TENSORS
#define NN_TFLITE_MAX_TENSORS (1 << 18)
#endif
#ifndef NN_TFLITE_MAX_OPS
#define NN_TFLITE_MAX_OPS (1 << 18)
#endif
/* Bytes of constants (weights as float32, integer constants as int64, rewritten weights and
 * constant subgraphs folded when loading) the loader may make from a file of L bytes:
 * min(NN_TFLITE_MAX_CONST_BYTES, NN_TFLITE_CONST_PER_BYTE * L + NN_TFLITE_CONST_SLACK). A real
 * model needs about 2 (float32) to 8 (int8) bytes per byte of file; a buffer shared by many
 * tensors counts once per tensor, so such a file cannot grow without bound. */
#ifndef NN_TFLITE_MAX_CONST_BYTES
#define NN_TFLITE_MAX_CONST_BYTES ((size_t)1 << 31)
#endif
#ifndef NN_TFLITE_CONST_PER_BYTE
#define NN_TFLITE_CONST_PER_BYTE 16
#endif
#ifndef NN_TFLITE_CONST_SLACK
#define NN_TFLITE_CONST_SLACK ((size_t)64 << 20)
#endif

/* Load path into a new graph.
 *   input_dims  4 values (N, H, W, C) for the model's one 4-D input, overriding the file's
 *               shape (fully convolutional models such as MTCNN's P-Net run at any size; a
 *               batch other than the file's is carried through Reshape ops whose target names
 *               the file's batch); NULL: the file's shape (an unknown batch taken as 1).
 * The graph's outputs are the model's, in file order, each named as in the file. */
int nn_tflite_load(const char *path, const int64_t *input_dims, nn_graph **out, mien_err *e);

/* Same, from a file already in memory (tests, fuzzing). name labels messages and the graph. */
int nn_tflite_load_buffer(const void *data, size_t len, const char *name,
                          const int64_t *input_dims, nn_graph **out, mien_err *e);

#endif
