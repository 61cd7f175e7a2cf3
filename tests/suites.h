/* Every test suite, one line each: SUITE(name) declares `Suite *suite_name(void)` defined in
 * tests/test_name.c and runs it. Add a suite here and nowhere else. */
SUITE(core)
SUITE(verify_eval)
SUITE(image)
SUITE(backend_ops)
SUITE(faceapi)
SUITE(golden)
SUITE(e2e)
SUITE(onnx)
SUITE(threads)
SUITE(train)
SUITE(gallery)
SUITE(face)
