// C entry points to TTHRESH for bench/src/tthresh.rs: compress float32 data
// to an RMSE target, decompress a float32 stream. Buffers handed out are
// malloc'd and freed with bench_tthresh_free. No C++ exception crosses.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "tthresh.hpp"
#include "compress.hpp"
#include "decompress.hpp"
#include "Slice.hpp"

static int hand_out(const std::string& bytes, uint8_t** out, size_t* out_len) {
    *out = static_cast<uint8_t*>(std::malloc(bytes.size() > 0 ? bytes.size() : 1));
    if (*out == nullptr)
        return -1;
    std::memcpy(*out, bytes.data(), bytes.size());
    *out_len = bytes.size();
    return 0;
}

// shape: n axis lengths, x (fastest) first, n >= 3. 0 on success.
extern "C" int bench_tthresh_compress(const float* data, const uint32_t* shape, size_t n,
                                      double target_rmse, uint8_t** out, size_t* out_len) {
    try {
        dimensions d;
        for (size_t i = 0; i < n; ++i)
            d.s.push_back(shape[i]);
        d.n = static_cast<uint8_t>(d.s.size());
        cumulative_products(d.s, d.sprod);
        std::stringstream stream(std::ios::in | std::ios::out | std::ios::binary);
        // For float input the returned buffer is TTHRESH's double copy.
        double* copy = compress_stream(d, reinterpret_cast<const char*>(data), stream,
                                       IOType::float_, rmse, target_rmse, false, false);
        delete[] copy;
        return hand_out(stream.str(), out, out_len);
    } catch (...) {
        return -1;
    }
}

// On entry *n is the capacity of `shape`; on success it is the number of
// axes written there and *out holds *out_len floats. 0 on success, 2 if the
// stream does not hold float32 values, 3 if it has more than *n axes, -1 if
// it is corrupt.
extern "C" int bench_tthresh_decompress(const uint8_t* in, size_t len, uint32_t* shape,
                                        size_t* n, float** out, size_t* out_len) {
    try {
        dimensions d;
        std::vector<Slice> cutout;
        std::istringstream compressed(std::string(reinterpret_cast<const char*>(in), len),
                                      std::ios::in | std::ios::binary);
        std::stringstream decompressed(std::ios::in | std::ios::out | std::ios::binary);
        IOType type = decompress_stream(d, compressed, decompressed, nullptr, cutout, false,
                                        false, false);
        if (type != IOType::float_)
            return 2;
        if (d.n > *n)
            return 3;
        for (uint8_t i = 0; i < d.n; ++i)
            shape[i] = d.s[i];
        *n = d.n;
        std::string bytes = decompressed.str();
        if (bytes.size() != d.sprod[d.n] * sizeof(float))
            return -1;
        uint8_t* buffer = nullptr;
        size_t buffer_len = 0;
        if (hand_out(bytes, &buffer, &buffer_len) != 0)
            return -1;
        *out = reinterpret_cast<float*>(buffer);
        *out_len = buffer_len / sizeof(float);
        return 0;
    } catch (...) {
        return -1;
    }
}

extern "C" void bench_tthresh_free(void* p) {
    std::free(p);
}
