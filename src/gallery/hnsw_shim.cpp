// The C interface of hnsw.h over hnswlib 0.6 (Debian's libhnswlib-dev, header-only).
//
// The only C++ in mien: everything here is exception-safe at the boundary (every entry point
// catches and returns a mien status), and nothing but hnswlib is used from C++.
//
// The distance is our own inner-product space rather than hnswlib's, whose SIMD paths are
// chosen at compile time (plain SSE without -mavx); ours picks AVX2+FMA at run time when the
// CPU has it, as the rest of mien does.
#include "gallery/hnsw.h"

#include "mien.h"

/* hnswlib 0.6's SSE paths prefetch one entry past the end of a link list (a read outside
 * the allocation that AddressSanitizer reports); its SIMD distances are replaced by ours
 * anyway, so its manual vectorisation is switched off altogether. */
#define NO_MANUAL_VECTORIZATION
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#if defined(__x86_64__) || defined(__i386__)
#define MIEN_HNSW_AVX2 1 /* the one SIMD guard of this file */
#include <immintrin.h>
#endif
#include <new>
#include <thread>
#include <vector>

namespace {

// ==== Inner-product space with run-time dispatch ====

float dot_plain(const float *a, const float *b, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

#ifdef MIEN_HNSW_AVX2
__attribute__((target("avx2,fma"))) float dot_avx2(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s0 = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    float s = _mm_cvtss_f32(h);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

#endif

float dist_plain(const void *a, const void *b, const void *param) {
    return 1.0f - dot_plain(static_cast<const float *>(a), static_cast<const float *>(b),
                            *static_cast<const size_t *>(param));
}

#ifdef MIEN_HNSW_AVX2
__attribute__((target("avx2,fma"))) float dist_avx2(const void *a, const void *b,
                                                     const void *param) {
    return 1.0f - dot_avx2(static_cast<const float *>(a), static_cast<const float *>(b),
                           *static_cast<const size_t *>(param));
}
#endif

class IpSpace : public hnswlib::SpaceInterface<float> {
  public:
    explicit IpSpace(size_t dim) : dim_(dim) {
#ifdef MIEN_HNSW_AVX2
        fn_ = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? dist_avx2
                                                                                : dist_plain;
#else
        fn_ = dist_plain;
#endif
    }
    size_t get_data_size() override { return dim_ * sizeof(float); }
    hnswlib::DISTFUNC<float> get_dist_func() override { return fn_; }
    void *get_dist_func_param() override { return &dim_; }

  private:
    size_t dim_;
    hnswlib::DISTFUNC<float> fn_;
};

using Index = hnswlib::HierarchicalNSW<float>;

void set_err(char *err, size_t size, const char *what, const char *detail) {
    if (err && size) std::snprintf(err, size, "%s: %s", what, detail);
}

}  // namespace

struct ghnsw {
    IpSpace space;
    Index *index = nullptr;
    ghnsw_params p;
    int dim;
    ghnsw(int d, const ghnsw_params &params) : space((size_t)d), p(params), dim(d) {}
    ~ghnsw() { delete index; }
};

extern "C" {

/* bench/bench_gallery on a million faces modelled on LFW's (README): ef_search 64 finds the
 * exact best face for 95.4% of the queries, 128 for 98.6%, 256 for 99.4% at 1.2 ms per query
 * (exact search: 43.5 ms). The index serves only galleries of MIEN_GALLERY_ANN_MIN_FACES and
 * more, so the recall target decides. */
void ghnsw_params_default(ghnsw_params *p) {
    p->M = 16;
    p->ef_construction = 100;
    p->ef_search = 256;
    p->seed = 100;
}

int ghnsw_create(int dim, size_t capacity, const ghnsw_params *p, ghnsw **out, char *err,
                 size_t errsize) {
    *out = nullptr;
    if (dim <= 0 || !p || p->M < 2 || p->M > 256 || p->ef_construction < 1 || p->ef_search < 1) {
        set_err(err, errsize, "hnsw", "bad parameters");
        return MIEN_EINVAL;
    }
    ghnsw *h = nullptr;
    try {
        h = new ghnsw(dim, *p);
        h->index = new Index(&h->space, std::max<size_t>(capacity, 16), (size_t)p->M,
                             (size_t)p->ef_construction, (size_t)p->seed);
        h->index->setEf(1); /* the candidate list size is chosen per search */
    } catch (const std::bad_alloc &) {
        delete h;
        set_err(err, errsize, "hnsw", "out of memory");
        return MIEN_ENOMEM;
    } catch (const std::exception &x) {
        delete h;
        set_err(err, errsize, "hnsw", x.what());
        return MIEN_ENOMEM; /* hnswlib throws runtime_error("Not enough memory") */
    }
    *out = h;
    return MIEN_OK;
}

void ghnsw_free(ghnsw *h) { delete h; }

int ghnsw_add(ghnsw *h, const float *v, const int64_t *labels, size_t n, int threads, char *err,
              size_t errsize) {
    if (n == 0) return MIEN_OK;
    try {
        Index *ix = h->index;
        size_t need = ix->cur_element_count + n;
        if (need > ix->max_elements_) ix->resizeIndex(std::max(need, ix->max_elements_ * 2));
        if (threads < 1) threads = 1;
        if ((size_t)threads > n / 64 + 1) threads = (int)(n / 64 + 1);
        /* The first point alone: hnswlib's entry point is set by the first insert. */
        size_t start = 0;
        if (ix->cur_element_count == 0) {
            ix->addPoint(v, (hnswlib::labeltype)labels[0]);
            start = 1;
        }
        if (threads == 1) {
            for (size_t i = start; i < n; i++)
                ix->addPoint(v + i * (size_t)h->dim, (hnswlib::labeltype)labels[i]);
            return MIEN_OK;
        }
        std::atomic<size_t> next(start);
        std::vector<std::exception_ptr> errs((size_t)threads);
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; t++)
            pool.emplace_back([&, t] {
                try {
                    for (;;) {
                        size_t i = next.fetch_add(1);
                        if (i >= n) break;
                        ix->addPoint(v + i * (size_t)h->dim, (hnswlib::labeltype)labels[i]);
                    }
                } catch (...) {
                    errs[(size_t)t] = std::current_exception();
                    next.store(n);
                }
            });
        for (auto &th : pool) th.join();
        for (auto &x : errs)
            if (x) std::rethrow_exception(x);
    } catch (const std::bad_alloc &) {
        set_err(err, errsize, "hnsw", "out of memory");
        return MIEN_ENOMEM;
    } catch (const std::exception &x) {
        set_err(err, errsize, "hnsw", x.what());
        return MIEN_ENOMEM;
    }
    return MIEN_OK;
}

void ghnsw_delete(ghnsw *h, int64_t label) {
    try {
        auto it = h->index->label_lookup_.find((hnswlib::labeltype)label);
        if (it != h->index->label_lookup_.end() && !h->index->isMarkedDeleted(it->second))
            h->index->markDeletedInternal(it->second);
    } catch (...) {
        /* Only "already deleted", excluded above. */
    }
}

int ghnsw_search(const ghnsw *h, const float *q, int k, int ef, int64_t *labels, float *sims,
                 int *n_out) {
    *n_out = 0;
    if (k <= 0) return MIEN_OK;
    try {
        /* hnswlib searches with max(ef_, k) candidates and keeps the k best; asking for
         * max(k, ef) and cutting here gives a per-call ef without touching shared state. */
        size_t want = (size_t)std::max(k, ef > 0 ? ef : h->p.ef_search);
        auto res = h->index->searchKnn(q, want);
        size_t m = res.size();
        std::vector<std::pair<float, hnswlib::labeltype>> v(m);
        for (size_t i = m; i-- > 0;) {  /* the queue pops the farthest first */
            v[i] = res.top();
            res.pop();
        }
        int n = (int)std::min(m, (size_t)k);
        for (int i = 0; i < n; i++) {
            labels[i] = (int64_t)v[(size_t)i].second;
            sims[i] = 1.0f - v[(size_t)i].first;
        }
        *n_out = n;
    } catch (const std::bad_alloc &) {
        return MIEN_ENOMEM;
    } catch (...) {
        return MIEN_EINTERNAL;
    }
    return MIEN_OK;
}

size_t ghnsw_count(const ghnsw *h) {
    return h->index->cur_element_count - h->index->num_deleted_;
}

int ghnsw_dim(const ghnsw *h) { return h->dim; }

int ghnsw_matches(const ghnsw *h, const int64_t *labels, const float *v, size_t n) {
    const Index *ix = h->index;
    if (ghnsw_count(h) != n) return 0;
    size_t bytes = (size_t)h->dim * sizeof(float);
    for (size_t i = 0; i < n; i++) {
        auto it = ix->label_lookup_.find((hnswlib::labeltype)labels[i]);
        if (it == ix->label_lookup_.end() || ix->isMarkedDeleted(it->second)) return 0;
        if (std::memcmp(ix->getDataByInternalId(it->second), v + i * (size_t)h->dim, bytes)) return 0;
    }
    return 1;
}

int ghnsw_save(const ghnsw *h, const char *path, char *err, size_t errsize) {
    try {
        h->index->saveIndex(path);
    } catch (const std::exception &x) {
        set_err(err, errsize, path, x.what());
        return MIEN_EIO;
    }
    /* saveIndex does not report write errors; read the size back. */
    FILE *f = std::fopen(path, "rb");
    long size = -1;
    if (f && std::fseek(f, 0, SEEK_END) == 0) size = std::ftell(f);
    if (f) std::fclose(f);
    const Index *ix = h->index;
    if (size < (long)(ix->cur_element_count * ix->size_data_per_element_)) {
        set_err(err, errsize, path, "could not write the whole index");
        return MIEN_EIO;
    }
    return MIEN_OK;
}

/* hnswlib's loader trusts the file; check every field a search dereferences. */
static const char *validate(const Index *ix, int dim) {
    size_t n = ix->cur_element_count;
    if (ix->maxM_ < 2 || ix->maxM_ > 256 || ix->maxM0_ != 2 * ix->maxM_ || ix->M_ != ix->maxM_)
        return "bad graph degree";
    if (ix->size_links_level0_ != ix->maxM0_ * 4 + 4 ||
        ix->size_data_per_element_ != ix->size_links_level0_ + (size_t)dim * 4 + 8 ||
        ix->offsetData_ != ix->size_links_level0_ || ix->label_offset_ != ix->offsetData_ + (size_t)dim * 4 ||
        ix->offsetLevel0_ != 0)
        return "layout does not match the dimension";
    if (n == 0) return nullptr;
    if (ix->enterpoint_node_ >= n || ix->maxlevel_ < 0 || ix->maxlevel_ > 64) return "bad entry point";
    if (ix->element_levels_[ix->enterpoint_node_] != ix->maxlevel_) return "bad entry point level";
    for (size_t i = 0; i < n; i++) {
        int levels = ix->element_levels_[i];
        if (levels > ix->maxlevel_) return "bad level";
        for (int l = 0; l <= levels; l++) {
            const unsigned *ll = l == 0 ? (const unsigned *)(ix->data_level0_memory_ +
                                                             i * ix->size_data_per_element_)
                                        : (const unsigned *)(ix->linkLists_[i] +
                                                             (size_t)(l - 1) * ix->size_links_per_element_);
            unsigned short cnt;
            std::memcpy(&cnt, ll, sizeof cnt);
            if (cnt > (l == 0 ? ix->maxM0_ : ix->maxM_)) return "bad link count";
            for (unsigned j = 0; j < cnt; j++)
                if (ll[1 + j] >= n) return "link out of range";
        }
    }
    return nullptr;
}

/* Walk the file as loadIndex will, so that it cannot throw half-way (its destructor is not
 * safe on a partly loaded index) or allocate what a damaged header claims. On success *count
 * is the number of elements. */
static const char *precheck(const char *path, int dim, size_t *count) {
    FILE *f = std::fopen(path, "rb");
    if (!f) return "cannot open";
    struct {
        uint64_t offset_level0, max_elements, count, size_per_element, label_offset, offset_data;
        int32_t maxlevel;
        uint32_t enterpoint;
        uint64_t max_m, max_m0, m;
        double mult;
        uint64_t ef_construction;
    } hd;
    const char *bad = nullptr;
    size_t links_level0 = 0;
#define RD(x) (std::fread(&(x), sizeof(x), 1, f) == 1)
    if (!RD(hd.offset_level0) || !RD(hd.max_elements) || !RD(hd.count) ||
        !RD(hd.size_per_element) || !RD(hd.label_offset) || !RD(hd.offset_data) ||
        !RD(hd.maxlevel) || !RD(hd.enterpoint) || !RD(hd.max_m) || !RD(hd.max_m0) || !RD(hd.m) ||
        !RD(hd.mult) || !RD(hd.ef_construction))
        bad = "short header";
    else if (hd.max_m < 2 || hd.max_m > 256 || hd.max_m0 != 2 * hd.max_m || hd.m != hd.max_m)
        bad = "bad graph degree";
    else if (links_level0 = hd.max_m0 * 4 + 4,
             hd.size_per_element != links_level0 + (size_t)dim * 4 + 8 ||
                 hd.offset_data != links_level0 || hd.label_offset != links_level0 + (size_t)dim * 4 ||
                 hd.offset_level0 != 0)
        bad = "layout does not match the dimension";
    else if (hd.count > ((uint64_t)1 << 32) - 2 || hd.maxlevel < 0 || hd.maxlevel > 64)
        bad = "bad element count or level";
    else if (std::fseek(f, (long)(hd.count * hd.size_per_element), SEEK_CUR) != 0)
        bad = "short file";
    size_t per_level = hd.max_m * 4 + 4;
    for (uint64_t i = 0; !bad && i < hd.count; i++) {
        uint32_t len;
        if (!RD(len)) bad = "short file";
        else if (len % per_level || len / per_level > (uint64_t)hd.maxlevel) bad = "bad link list";
        else if (len && std::fseek(f, (long)len, SEEK_CUR) != 0) bad = "short file";
    }
#undef RD
    if (!bad) {
        long pos = std::ftell(f);
        if (std::fseek(f, 0, SEEK_END) != 0 || std::ftell(f) != pos) bad = "wrong file size";
    }
    std::fclose(f);
    *count = (size_t)hd.count;
    return bad;
}

int ghnsw_load(const char *path, int dim, const ghnsw_params *p, ghnsw **out, char *err,
               size_t errsize) {
    *out = nullptr;
    ghnsw *h = nullptr;
    size_t count = 0;
    const char *pre = dim > 0 ? precheck(path, dim, &count) : "bad dimension";
    if (pre) {
        set_err(err, errsize, path, pre);
        return MIEN_EFORMAT;
    }
    try {
        h = new ghnsw(dim, *p);
        h->index = new Index(&h->space);
    } catch (...) {
        delete h;
        set_err(err, errsize, path, "out of memory");
        return MIEN_ENOMEM;
    }
    try {
        h->index->loadIndex(path, &h->space, std::max<size_t>(count, 16));
    } catch (const std::exception &x) {
        /* Only allocation failures get here after the precheck (or a file changed under us);
         * the partly loaded index cannot be destroyed safely, so it is left behind. */
        h->index = nullptr;
        delete h;
        set_err(err, errsize, path, x.what());
        return MIEN_EFORMAT;
    }
    try {
        const char *bad = validate(h->index, dim);
        if (bad) {
            set_err(err, errsize, path, bad);
            delete h;
            return MIEN_EFORMAT;
        }
        h->index->setEf(1);
        h->p.M = (int)h->index->M_;
    } catch (const std::bad_alloc &) {
        delete h;
        set_err(err, errsize, path, "out of memory (or a damaged index)");
        return MIEN_EFORMAT;
    } catch (const std::exception &x) {
        delete h;
        set_err(err, errsize, path, x.what());
        return MIEN_EFORMAT;
    }
    *out = h;
    return MIEN_OK;
}

}  // extern "C"
