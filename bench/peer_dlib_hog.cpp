// dlib 19.24's HOG face detector (get_frontal_face_detector) on a list of photos: median ms
// per photo of detection alone (photos decoded beforehand, no upsampling), over 4 timed passes
// after one untimed. Part of bench/peers.sh, which compiles it against Debian's libdlib-dev.
//   peer_dlib_hog LIST      (one photo path per line)   -> one JSON object
#include <dlib/image_io.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/revision.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: peer_dlib_hog LIST\n");
        return 2;
    }
    std::ifstream list(argv[1]);
    std::vector<dlib::array2d<unsigned char>> imgs;
    for (std::string line; std::getline(list, line);) {
        if (line.empty()) continue;
        imgs.emplace_back();
        dlib::load_image(imgs.back(), line);  // grey, as the detector works on
    }
    if (imgs.empty()) return 1;
    dlib::frontal_face_detector det = dlib::get_frontal_face_detector();
    const int passes = 4;
    std::vector<double> t, c;
    size_t faces = 0;
    auto cpu = [] {  // the thread's CPU time, ms
        timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
    };
    for (int p = 0; p <= passes; p++) {
        auto t0 = std::chrono::steady_clock::now();
        double c0 = cpu();
        size_t found = 0;
        for (auto &im : imgs) found += det(im).size();
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (p) t.push_back(ms / (double)imgs.size()), c.push_back((cpu() - c0) / (double)imgs.size());
        faces = found;
    }
    std::sort(t.begin(), t.end());
    std::sort(c.begin(), c.end());
    double med = 0.5 * (t[passes / 2 - 1] + t[passes / 2]);
    double cmed = 0.5 * (c[passes / 2 - 1] + c[passes / 2]);
    std::printf("{\"tool\":\"dlib %d.%d HOG\",\"threads\":1,\"images\":%zu,\"ms_per_image\":%.4f,"
                "\"cpu_ms_per_image\":%.4f,\"faces\":%zu}\n",
                DLIB_MAJOR_VERSION, DLIB_MINOR_VERSION, imgs.size(), med, cmed, faces);
    return 0;
}
