/* _pfscan: the Postfix index loader's per-line work, compiled.
 *
 * `Scanner.scan(data)` takes whole syslog lines, slice after slice: it cuts the syslog prefix
 * and timestamp (putting classic stamps in their year), decides each line's role, and keeps
 * the open sessions and transactions in two hash maps (connection key -> its session, queue
 * id -> its transaction; a new `connect from` / `client=` / pickup line starts a new one, so
 * pid and queue-id reuse are safe). `finish()` hands over the finished rows of sessions,
 * transactions, recipients, rejects and session_lines as Arrow buffers.
 *
 * It computes exactly what the SQL path of columnar_postfix computes (the same
 * split_part/strpos/trim semantics, field by field), which remains the specification and the
 * fallback when this module is not built; tests/unit/logs/test_pfscan.py compares every table
 * of the two, row for row.
 *
 * Input is hostile (spam decides much of a log line): every cut is bounded by the line's
 * length, no pattern backtracks, and the only allocations are growing buffers (an
 * out-of-memory is a MemoryError, never a crash). The scan loop touches no Python object, so
 * it runs with the GIL released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ---- roles: keep in step with columnar_postfix.R_* ---- */
enum {
    R_OTHER, R_CONNECT, R_DISCONNECT, R_END, R_CLIENT, R_TLS, R_AUTH_FAIL, R_REJECT,
    R_MESSAGE_ID, R_QMGR_FROM, R_REMOVED, R_DELIVERY, R_PICKUP, R_SUBJECT, R_SPAM, R_FROM
};

typedef struct { const char *p; Py_ssize_t n; } sv;

static const sv NONE = {NULL, -1};  /* SQL NULL */

static inline sv mk(const char *p, Py_ssize_t n) { sv s = {p, n}; return s; }
static inline int is_null(sv s) { return s.n < 0; }

/* First occurrence of needle in s, or -1.
 *
 * With SSE2 (every x86-64): 16 candidate positions at a time, kept where both the needle's
 * first and last bytes match, then the bytes in between compared (Mula's "SIMD-friendly"
 * substring search). The needles are short literals and the haystacks lines of about 130
 * bytes, many of them searched for several needles that are not there: memchr for the first
 * byte then memcmp (the fallback below) stopped at every ':' or ' ' of the line, a call each
 * (memchr and memcmp, mostly from here, were 8-9% of a 1 GiB log's load). Glibc's memmem
 * was slower still (0.95 against 0.25 us a line): its two-way set-up costs more than the search.
 * Every load stays inside s: the last block read ends at s.p[s.n - 1]. */
static inline Py_ssize_t find_scalar(sv s, const char *needle, Py_ssize_t k, Py_ssize_t from) {
    const char *p = s.p + from, *last = s.p + s.n - k;
    while (p <= last) {
        const char *hit = memchr(p, needle[0], (size_t)(last - p + 1));
        if (!hit) return -1;
        if (memcmp(hit + 1, needle + 1, (size_t)(k - 1)) == 0) return (Py_ssize_t)(hit - s.p);
        p = hit + 1;
    }
    return -1;
}

static inline Py_ssize_t find(sv s, const char *needle, Py_ssize_t k) {
    if (k == 0) return 0;
    if (s.n < k) return -1;
    if (k == 1) {
        const char *hit = memchr(s.p, needle[0], (size_t)s.n);
        return hit ? (Py_ssize_t)(hit - s.p) : -1;
    }
#ifdef __SSE2__
    const __m128i first = _mm_set1_epi8(needle[0]), lastb = _mm_set1_epi8(needle[k - 1]);
    Py_ssize_t i = 0;
    /* the 16 starts i .. i + 15 are all possible while i + 15 + k - 1 < s.n */
    for (; i + 15 + k <= s.n; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(s.p + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(s.p + i + k - 1));
        unsigned mask = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, first), _mm_cmpeq_epi8(b, lastb)));
        while (mask) {
            int bit = __builtin_ctz(mask);
            if (k <= 2 || memcmp(s.p + i + bit + 1, needle + 1, (size_t)(k - 2)) == 0) return i + bit;
            mask &= mask - 1;
        }
    }
    return i + k <= s.n ? find_scalar(s, needle, k, i) : -1;
#else
    return find_scalar(s, needle, k, 0);
#endif
}
#define FIND(s, lit) find((s), (lit), (Py_ssize_t)(sizeof(lit) - 1))
#define CONTAINS(s, lit) (FIND((s), lit) >= 0)

/* What scan() noticed in the bytes of a slice (the 4th item it returns). */
enum { SAW_CR = 1, SAW_NOT_ASCII = 2 };

/* FOR_EACH_LINE(p, end, line, nl, seen, body): body runs for each line [line, nl) of [p, end),
 * in order (nl is the line's '\n', or end for a last line without one); the bits of SAW_* are
 * or-ed into seen. With SSE2 the line ends come 16 bytes at a time, with the CR and high-bit
 * tests on the same loads: one pass over the text instead of a memchr call per line and the
 * two passes over each slice (CR, isascii) that columnar_postfix made before (0.3 s a GiB).
 * body may leave with goto, never with break or continue (they would bind to the loops here). */
#ifdef __SSE2__
#define FOR_EACH_LINE(P, END, LINE, NL, SEEN, BODY) do {                                            \
    const char *q_ = (P), *end_ = (END), *LINE = q_, *NL;                                           \
    const __m128i nlv_ = _mm_set1_epi8('\n'), crv_ = _mm_set1_epi8('\r');                          \
    __m128i hi_ = _mm_setzero_si128(), cr_ = _mm_setzero_si128();                                   \
    for (; end_ - q_ >= 16; q_ += 16) {                                                             \
        __m128i v_ = _mm_loadu_si128((const __m128i *)q_);                                          \
        hi_ = _mm_or_si128(hi_, v_);                                                                \
        cr_ = _mm_or_si128(cr_, _mm_cmpeq_epi8(v_, crv_));                                          \
        unsigned m_ = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v_, nlv_));                        \
        while (m_) {                                                                                \
            NL = q_ + __builtin_ctz(m_);                                                            \
            m_ &= m_ - 1;                                                                           \
            BODY                                                                                    \
            LINE = NL + 1;                                                                          \
        }                                                                                           \
    }                                                                                               \
    if (_mm_movemask_epi8(hi_)) (SEEN) |= SAW_NOT_ASCII;                                            \
    if (_mm_movemask_epi8(cr_)) (SEEN) |= SAW_CR;                                                   \
    for (; q_ < end_; q_++) {                                                                       \
        unsigned char c_ = (unsigned char)*q_;                                                      \
        if (c_ & 0x80) (SEEN) |= SAW_NOT_ASCII;                                                     \
        else if (c_ == '\r') (SEEN) |= SAW_CR;                                                      \
        else if (c_ == '\n') { NL = q_; BODY LINE = NL + 1; }                                       \
    }                                                                                               \
    if (LINE < end_) { NL = end_; BODY }                                                            \
} while (0)
#else
#define FOR_EACH_LINE(P, END, LINE, NL, SEEN, BODY) do {                                            \
    const char *end_ = (END), *LINE = (P), *NL;                                                     \
    for (const char *q_ = LINE; q_ < end_; q_++) {                                                  \
        if ((unsigned char)*q_ & 0x80) (SEEN) |= SAW_NOT_ASCII;                                     \
        else if (*q_ == '\r') (SEEN) |= SAW_CR;                                                     \
    }                                                                                               \
    while (LINE < end_) {                                                                           \
        const char *hit_ = memchr(LINE, '\n', (size_t)(end_ - LINE));                               \
        NL = hit_ ? hit_ : end_;                                                                    \
        BODY                                                                                        \
        LINE = NL + 1;                                                                              \
    }                                                                                               \
} while (0)
#endif


static inline int starts(sv s, const char *lit, Py_ssize_t k) {
    return s.n >= k && memcmp(s.p, lit, (size_t)k) == 0;
}
#define STARTS(s, lit) starts((s), (lit), (Py_ssize_t)(sizeof(lit) - 1))

static inline int ends(sv s, const char *lit, Py_ssize_t k) {
    return s.n >= k && memcmp(s.p + s.n - k, lit, (size_t)k) == 0;
}
#define ENDS(s, lit) ends((s), (lit), (Py_ssize_t)(sizeof(lit) - 1))

static inline int eq(sv s, const char *lit, Py_ssize_t k) {
    return s.n == k && memcmp(s.p, lit, (size_t)k) == 0;
}
#define EQ(s, lit) eq((s), (lit), (Py_ssize_t)(sizeof(lit) - 1))

/* DuckDB split_part(s, delim, idx) for idx >= 1: the idx-th piece, '' when there is none. */
static sv split_pos(sv s, const char *d, Py_ssize_t k, int idx) {
    if (is_null(s)) return s;
    Py_ssize_t start = 0;
    for (int i = 1; i < idx; i++) {
        Py_ssize_t at = find(mk(s.p + start, s.n - start), d, k);
        if (at < 0) return mk(s.p + s.n, 0);
        start += at + k;
    }
    Py_ssize_t at = find(mk(s.p + start, s.n - start), d, k);
    return mk(s.p + start, at < 0 ? s.n - start : at);
}
#define SPLIT(s, lit, idx) split_pos((s), (lit), (Py_ssize_t)(sizeof(lit) - 1), (idx))

/* split_part(s, c, -idx) for a one-byte delimiter: counted from the end. */
static sv split_neg(sv s, char c, int idx) {
    if (is_null(s)) return s;
    Py_ssize_t end = s.n;
    for (int i = 1; ; i++) {
        Py_ssize_t j = end - 1;
        while (j >= 0 && s.p[j] != c) j--;
        if (i == idx) return mk(s.p + j + 1, end - j - 1);
        if (j < 0) return mk(s.p, 0);
        end = j;
    }
}

static sv rtrim_set(sv s, const char *set) {
    if (is_null(s)) return s;
    while (s.n > 0 && strchr(set, s.p[s.n - 1]) && s.p[s.n - 1] != '\0') s.n--;
    return s;
}

static sv trim_set(sv s, const char *set) {
    if (is_null(s)) return s;
    while (s.n > 0 && s.p[0] != '\0' && strchr(set, s.p[0])) { s.p++; s.n--; }
    return rtrim_set(s, set);
}

/* pf_angle(txt, key): the value of key<...> (see columnar_postfix.ANGLE_MACRO). */
static sv angle(sv txt, const char *key, Py_ssize_t k) {
    Py_ssize_t at = find(txt, key, k);
    if (at < 0) return NONE;
    sv tail = mk(txt.p + at + k, txt.n - at - k);
    Py_ssize_t best = -1;
    const char *closers[3] = {"> ", ">,", ">;"};
    for (int i = 0; i < 3; i++) {
        Py_ssize_t c = find(tail, closers[i], 2);
        if (c >= 0 && (best < 0 || c < best)) best = c;
    }
    if (best >= 0) return mk(tail.p, best);
    if (ENDS(tail, ">")) return mk(tail.p, tail.n - 1);
    return tail;
}
#define ANGLE(s, lit) angle((s), (lit), (Py_ssize_t)(sizeof(lit) - 1))

static sv nullif_empty(sv s) { return (!is_null(s) && s.n == 0) ? NONE : s; }

/* '^[245]\.[0-9]{1,3}\.[0-9]{1,3}$': an enhanced status code (RFC 3463). */
static int is_dsn(sv s) {
    if (s.n < 5 || s.n > 9 || (s.p[0] != '2' && s.p[0] != '4' && s.p[0] != '5') || s.p[1] != '.') return 0;
    Py_ssize_t i = 2, k = 0;
    while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9' && k < 3) { i++; k++; }
    if (!k || i >= s.n || s.p[i] != '.') return 0;
    i++;
    k = 0;
    while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9' && k < 3) { i++; k++; }
    return k && i == s.n;
}

/* ---- output columns ---- */
typedef struct { char *p; Py_ssize_t n, cap; } buf;

static int buf_grow(buf *b, Py_ssize_t extra) {
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + extra) cap *= 2;
    char *p = realloc(b->p, (size_t)cap);
    if (!p) return -1;
    b->p = p; b->cap = cap;
    return 0;
}

/* Inline, so that a put of a constant size compiles to a move (not a call to memcpy). */
static inline int buf_reserve(buf *b, Py_ssize_t extra) {
    return b->n + extra <= b->cap ? 0 : buf_grow(b, extra);
}

static inline int buf_put(buf *b, const void *src, Py_ssize_t k) {
    if (buf_reserve(b, k) < 0) return -1;
    if (k) memcpy(b->p + b->n, src, (size_t)k);
    b->n += k;
    return 0;
}

static void buf_free(buf *b) { free(b->p); b->p = NULL; b->n = b->cap = 0; }

/* An Arrow column: values (fixed width) or offsets + data (strings), and a validity bitmap. */
typedef struct {
    buf values;   /* int64 / uint8 values, or int32 offsets for strings */
    buf data;     /* string bytes */
    buf valid;    /* bitmap, LSB first */
    Py_ssize_t rows, nulls;
    int skip;     /* not wanted (finish_table's columns): every put is a no-op, not returned */
} column;

static inline int col_valid(column *c, int ok) {
    Py_ssize_t byte = c->rows >> 3;
    if (byte >= c->valid.n) {
        if (buf_reserve(&c->valid, 1) < 0) return -1;
        c->valid.p[c->valid.n++] = 0;
    }
    if (ok) c->valid.p[byte] |= (char)(1 << (c->rows & 7));
    else c->nulls++;
    c->rows++;
    return 0;
}

static int col_str(column *c, sv s) {
    if (c->skip) return 0;
    if (c->rows == 0) {
        int32_t zero = 0;
        if (buf_put(&c->values, &zero, 4) < 0) return -1;
    }
    if (!is_null(s) && buf_put(&c->data, s.p, s.n) < 0) return -1;
    if (c->data.n > INT32_MAX) return -1;  /* a slice is at most tens of MiB */
    int32_t off = (int32_t)c->data.n;
    if (buf_put(&c->values, &off, 4) < 0) return -1;
    return col_valid(c, !is_null(s));
}



static inline int col_i64(column *c, int64_t v, int ok) {
    if (c->skip) return 0;
    if (!ok) v = 0;
    if (buf_put(&c->values, &v, 8) < 0) return -1;
    return col_valid(c, ok);
}

static inline int col_u8(column *c, uint8_t v) {
    if (c->skip) return 0;
    if (buf_put(&c->values, &v, 1) < 0) return -1;
    return col_valid(c, 1);
}

static void col_reset(column *c) {
    c->values.n = c->data.n = c->valid.n = 0;
    c->rows = c->nulls = 0;
}

static void col_free(column *c) { buf_free(&c->values); buf_free(&c->data); buf_free(&c->valid); }

/* ---- hash map: 64-bit key hash -> int64 (index of a session or transaction) ----
 * Key and value side by side: one cache miss a lookup (the maps hold millions of keys). */
typedef struct { uint64_t key; int64_t val; } slot;
typedef struct { slot *slots; Py_ssize_t cap, used; } map;

/* A 64-bit key for up to three parts (NULL, empty and the part boundaries all distinct): each
 * part's length, then its bytes 8 at a time, multiplied and folded in. The maps keep only
 * this key, so it must spread well; byte-at-a-time FNV did too, at 3-4x the cost (1.6% of the
 * 1 GiB bench log's load, two keys a line). */
static uint64_t hash_parts(char kind, sv a, sv b, sv c) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (unsigned char)kind, w;
    sv parts[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        if (is_null(parts[i])) {
            h = (h ^ 0xffULL) * 0xff51afd7ed558ccdULL;
            h ^= h >> 32;
            continue;
        }
        const char *p = parts[i].p;
        Py_ssize_t n = parts[i].n, j = 0;
        h = (h ^ (0x100ULL + (uint64_t)n)) * 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 29;
        for (; j + 8 <= n; j += 8) {
            memcpy(&w, p + j, 8);
            h = (h ^ w) * 0xff51afd7ed558ccdULL;
            h ^= h >> 32;
        }
        if (j < n) {
            w = 0;
            memcpy(&w, p + j, (size_t)(n - j));
            h = (h ^ w) * 0xff51afd7ed558ccdULL;
            h ^= h >> 32;
        }
    }
    h ^= h >> 33; h *= 0xff51afd7ed558ccdULL; h ^= h >> 33;
    return h ? h : 1;
}

/* Zeroed memory for tables that are read before they are written (the maps' slots, counts):
 * written here, not calloc'ed. calloc's fresh pages are mapped to the shared zero page, so a
 * page's first read and then its first write fault twice, and the second fault (a copy-on-write)
 * flushes the TLB of every core the process runs on, an interrupt each (2% of the 1 GiB bench
 * log's load). huge_pages (the maps): 2 MiB pages when big, since the slots are visited at
 * random and with 4 KiB pages nearly every look-up missed the TLB. */
static void *alloc_zeroed(size_t bytes, int huge_pages) {
    const size_t huge = (size_t)2 << 20;
    void *p = NULL;
    if (huge_pages && bytes >= huge) {
        if (posix_memalign(&p, huge, bytes)) return NULL;
#ifdef MADV_HUGEPAGE
        madvise(p, bytes, MADV_HUGEPAGE);   /* a hint: refused or not, the memory is the same */
#endif
    } else if (!(p = malloc(bytes ? bytes : 1))) {
        return NULL;
    }
    memset(p, 0, bytes);
    return p;
}

static slot *slots_alloc(Py_ssize_t cap) { return alloc_zeroed((size_t)cap * sizeof(slot), 1); }

/* Room for about n keys at once (a load factor of at most a half), so that a big log's map is
 * not grown and re-hashed ten times over: each re-hash touches every key again, at random. */
static int map_reserve(map *m, Py_ssize_t n) {
    Py_ssize_t cap = 1 << 16;
    while (cap < 2 * n) cap *= 2;
    if (m->cap >= cap) return 0;
    if (m->used) return 0;   /* only an empty map: the keys would have to move */
    slot *slots = slots_alloc(cap);
    if (!slots) return -1;
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

static int map_grow(map *m) {
    Py_ssize_t cap = m->cap ? m->cap * 2 : 1 << 16;
    slot *slots = slots_alloc(cap);
    if (!slots) return -1;
    for (Py_ssize_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key) continue;
        Py_ssize_t j = (Py_ssize_t)(m->slots[i].key & (uint64_t)(cap - 1));
        while (slots[j].key) j = (j + 1) & (cap - 1);
        slots[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

/* The value of key (inserted empty when absent: *found = 0). */
static int64_t *map_slot(map *m, uint64_t key, int *found) {
    if ((m->used + 1) * 2 > m->cap && map_grow(m) < 0) return NULL;
    Py_ssize_t j = (Py_ssize_t)(key & (uint64_t)(m->cap - 1));
    while (m->slots[j].key && m->slots[j].key != key) j = (j + 1) & (m->cap - 1);
    *found = m->slots[j].key != 0;
    if (!*found) { m->slots[j].key = key; m->used++; }
    return &m->slots[j].val;
}

static inline void map_prefetch(const map *m, uint64_t key) {
    if (m->cap) __builtin_prefetch(&m->slots[key & (uint64_t)(m->cap - 1)]);
}

static void map_free(map *m) { free(m->slots); memset(m, 0, sizeof *m); }

/* The value of key, or NULL when absent (nothing inserted). */
static int64_t *map_find(map *m, uint64_t key) {
    if (!m->cap) return NULL;
    Py_ssize_t j = (Py_ssize_t)(key & (uint64_t)(m->cap - 1));
    while (m->slots[j].key && m->slots[j].key != key) j = (j + 1) & (m->cap - 1);
    return m->slots[j].key ? &m->slots[j].val : NULL;
}

/* ---- timestamps (microseconds since 1970-01-01) ---- */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int64_t y, int m) {
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return dm[m - 1];
}

static int digits(const char *p, Py_ssize_t n, Py_ssize_t *i, int min, int max, int *out) {
    int v = 0, k = 0;
    while (*i < n && k < max && p[*i] >= '0' && p[*i] <= '9') { v = v * 10 + (p[*i] - '0'); (*i)++; k++; }
    if (k < min) return 0;
    *out = v;
    return 1;
}

/* The month (1-12) a stamp begins with ("Mar", any case), 0 if none; s.n >= 3. */
static int month_of(sv s) {
    static const char *months = "janfebmaraprmayjunjulaugsepoctnovdec";
    char m3[3];
    for (int j = 0; j < 3; j++) m3[j] = (char)(s.p[j] >= 'A' && s.p[j] <= 'Z' ? s.p[j] + 32 : s.p[j]);
    for (int m = 0; m < 12; m++) if (!memcmp(m3, months + 3 * m, 3)) return m + 1;
    return 0;
}

/* "Mmm dd HH:MM:SS" in year 2000 (a leap year: Feb 29 parses), as strptime('%Y %b %d %H:%M:%S'). */
static int parse_classic(sv s, int64_t *us) {
    if (s.n < 3) return 0;
    int mon = month_of(s);
    if (!mon) return 0;
    Py_ssize_t i = 3;
    int day, hh, mm, ss;
    if (i >= s.n || s.p[i] != ' ') return 0;
    while (i < s.n && s.p[i] == ' ') i++;
    if (!digits(s.p, s.n, &i, 1, 2, &day)) return 0;
    if (i >= s.n || s.p[i] != ' ') return 0;
    while (i < s.n && s.p[i] == ' ') i++;
    if (!digits(s.p, s.n, &i, 1, 2, &hh) || i >= s.n || s.p[i++] != ':') return 0;
    if (!digits(s.p, s.n, &i, 1, 2, &mm) || i >= s.n || s.p[i++] != ':') return 0;
    if (!digits(s.p, s.n, &i, 1, 2, &ss)) return 0;
    while (i < s.n && s.p[i] == ' ') i++;   /* "Mar 7 02:09:33 " (a one-digit day) */
    if (i != s.n) return 0;
    if (day < 1 || day > days_in_month(2000, mon) || hh > 23 || mm > 59 || ss > 59) return 0;
    *us = ((days_from_civil(2000, mon, day) * 24 + hh) * 60 + mm) * 60000000LL + ss * 1000000LL;
    return 1;
}

/* RFC 3339 "2024-08-29T01:08:59.76+00:00" (offset Z, +HH:MM, +HHMM or none = UTC) -> UTC. */
static int parse_rfc3339(sv s, int64_t *us) {
    Py_ssize_t i = 0;
    int y, mo, d, hh, mm, ss;
    if (!digits(s.p, s.n, &i, 4, 4, &y) || i >= s.n || s.p[i++] != '-') return 0;
    if (!digits(s.p, s.n, &i, 2, 2, &mo) || i >= s.n || s.p[i++] != '-') return 0;
    if (!digits(s.p, s.n, &i, 2, 2, &d) || i >= s.n || (s.p[i] != 'T' && s.p[i] != 't')) return 0;
    i++;
    if (!digits(s.p, s.n, &i, 2, 2, &hh) || i >= s.n || s.p[i++] != ':') return 0;
    if (!digits(s.p, s.n, &i, 2, 2, &mm) || i >= s.n || s.p[i++] != ':') return 0;
    if (!digits(s.p, s.n, &i, 2, 2, &ss)) return 0;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || hh > 23 || mm > 59 || ss > 59) return 0;
    int64_t frac = 0;
    if (i < s.n && s.p[i] == '.') {
        i++;
        int k = 0;
        Py_ssize_t start = i;
        while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9') {
            if (k < 6) { frac = frac * 10 + (s.p[i] - '0'); k++; }
            i++;
        }
        if (i == start) return 0;
        while (k++ < 6) frac *= 10;
    }
    int64_t offset = 0;
    if (i < s.n) {
        char sign = s.p[i];
        if (sign == 'Z' || sign == 'z') {
            i++;
        } else if (sign == '+' || sign == '-') {
            int oh, om = 0;
            i++;
            if (!digits(s.p, s.n, &i, 2, 2, &oh)) return 0;
            if (i < s.n && s.p[i] == ':') i++;
            if (i < s.n && !digits(s.p, s.n, &i, 2, 2, &om)) return 0;
            if (oh > 23 || om > 59) return 0;
            offset = (int64_t)(oh * 60 + om) * 60000000LL * (sign == '-' ? -1 : 1);
        } else {
            return 0;
        }
    }
    if (i != s.n) return 0;
    *us = ((days_from_civil(y, mo, d) * 24 + hh) * 60 + mm) * 60000000LL + ss * 1000000LL + frac - offset;
    return 1;
}

/* ---- small patterns of the SQL path ---- */
static int in_hex_upper(char ch) { return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'F'); }
static int in_long_qid(char ch) {  /* [0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z] */
    if (ch >= '0' && ch <= '9') return 1;
    char l = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    if (l < 'a' || l > 'z') return 0;
    return !(l == 'a' || l == 'e' || l == 'i' || l == 'o' || l == 'u');
}
static int in_alnum(char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

/* columnar_postfix.QID_RE: the queue id's length, or 0. */
static Py_ssize_t qid_len(sv msg) {
    Py_ssize_t k = 0;
    while (k < msg.n && in_hex_upper(msg.p[k])) k++;
    if (k >= 5 && k <= 14 && k + 1 < msg.n && msg.p[k] == ':' && msg.p[k + 1] == ' ') return k;
    k = 0;
    while (k < msg.n && in_long_qid(msg.p[k])) k++;
    if (k >= 12 && k <= 20 && k + 1 < msg.n && msg.p[k] == ':' && msg.p[k + 1] == ' ') return k;
    return 0;
}

/* "<action>: " of REJECT_ACTIONS at the start of s. */
static int reject_action_at(sv s) {
    static const char *actions[] = {"reject: ", "reject_warning: ", "milter-reject: ", "discard: ",
                                    "milter-discard: ", "proxy-reject: "};
    for (int i = 0; i < 6; i++)
        if (starts(s, actions[i], (Py_ssize_t)strlen(actions[i]))) return 1;
    return 0;
}

/* '^[0-9A-Za-z]{5,20}: ' REJECT_ACTIONS ': ' */
static int qid_reject(sv msg) {
    Py_ssize_t k = 0;
    while (k < msg.n && in_alnum(msg.p[k])) k++;
    if (k < 5 || k > 20 || k + 1 >= msg.n || msg.p[k] != ':' || msg.p[k + 1] != ' ') return 0;
    return reject_action_at(mk(msg.p + k + 2, msg.n - k - 2));
}

/* ---- output tables ---- */
typedef struct {
    const char *name;
    int ncols;
    const char *const *names;
    const char *kinds;      /* per column: l = int64, t = timestamp (int64 us), u = uint8, s = string */
    column cols[26];
} table;

static void table_reset(table *t) { for (int i = 0; i < t->ncols; i++) col_reset(&t->cols[i]); }
static void table_free(table *t) { for (int i = 0; i < t->ncols; i++) col_free(&t->cols[i]); }

/* Room for `rows` rows in every wanted column (not the string bytes): a range of a table knows its
 * row count, and growing by doubling copied and touched each buffer twice over. */
static int table_reserve(table *t, Py_ssize_t rows) {
    for (int i = 0; i < t->ncols; i++) {
        column *c = &t->cols[i];
        if (c->skip) continue;
        char kind = t->kinds[i];
        Py_ssize_t width = kind == 's' ? 4 : kind == 'u' ? 1 : 8;
        if (buf_reserve(&c->values, width * (rows + 1)) < 0 || buf_reserve(&c->valid, rows / 8 + 1) < 0)
            return -1;
    }
    return 0;
}

/* A read-only buffer that owns malloc'd memory: column buffers go to pyarrow (pa.py_buffer)
 * without a copy, and are freed when the last Arrow array over them is. */
typedef struct {
    PyObject_HEAD
    char *p;
    Py_ssize_t n;
} OwnedBuffer;

static int OwnedBuffer_getbuffer(OwnedBuffer *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->p ? self->p : (char *)"", self->n, 1, flags);
}

static void OwnedBuffer_dealloc(OwnedBuffer *self) {
    free(self->p);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyBufferProcs OwnedBuffer_as_buffer = {(getbufferproc)OwnedBuffer_getbuffer, NULL};

static PyTypeObject OwnedBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mailwarden.logs._pfscan.OwnedBuffer",
    .tp_basicsize = sizeof(OwnedBuffer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Column bytes handed over by the scanner (read-only buffer).",
    .tp_dealloc = (destructor)OwnedBuffer_dealloc,
    .tp_as_buffer = &OwnedBuffer_as_buffer,
};

/* Hand b's memory to a new OwnedBuffer; b is left empty. */
static PyObject *steal(buf *b) {
    OwnedBuffer *o = PyObject_New(OwnedBuffer, &OwnedBufferType);
    if (!o) return NULL;
    o->p = b->p;
    o->n = b->n;
    b->p = NULL;
    b->n = b->cap = 0;
    return (PyObject *)o;
}

static PyObject *table_dict(table *t) {
    PyObject *out = PyDict_New();
    if (!out) return NULL;
    for (int i = 0; i < t->ncols; i++) {
        column *c = &t->cols[i];
        char kind = t->kinds[i];
        if (c->skip) continue;
        if (kind == 's' && c->rows == 0 && c->values.n == 0) {  /* offsets of an empty array: [0] */
            int32_t zero = 0;
            if (buf_put(&c->values, &zero, 4) < 0) { Py_DECREF(out); return PyErr_NoMemory(); }
        }
        PyObject *values = steal(&c->values);
        PyObject *data = kind == 's' ? steal(&c->data) : (Py_INCREF(Py_None), Py_None);
        PyObject *valid = c->nulls ? steal(&c->valid) : (Py_INCREF(Py_None), Py_None);
        PyObject *item = (values && data && valid)
            ? Py_BuildValue("(CNNNnn)", kind, values, data, valid, c->nulls, c->rows) : NULL;
        if (!item) { Py_XDECREF(values); Py_XDECREF(data); Py_XDECREF(valid); Py_DECREF(out); return NULL; }
        if (PyDict_SetItemString(out, t->names[i], item) < 0) { Py_DECREF(item); Py_DECREF(out); return NULL; }
        Py_DECREF(item);
    }
    return out;
}

/* AUTH failures (warning lines) and successes (client= with sasl_username), slice by slice */
static const char *const AUTH_NAMES[] = {"lineno", "session_id", "ts", "client_ip", "user", "method", "ok",
                                         "reason"};
/* At the end (finish): the index's own columns, so SQL only adds source_id and sorts where
 * the index wants an order (columnar_postfix.finish_tables). */
static const char *const SESS_NAMES[] = {
    "session_id", "kind", "start_ts", "end_ts", "ts_is_local", "host", "service", "pid", "client_ip",
    "client_port", "client_name", "helo", "server_ip", "server_port", "tls", "tls_info", "auth_user",
    "auth_method", "auth_failures", "local_user", "outcome", "commands", "first_lineno", "last_lineno",
    "n_lines"};
static const char SESS_KINDS[] = "lsttusslslssslussslssslll";
static const char *const TXN_NAMES[] = {
    "session_id", "txn_id", "queue_id", "message_id", "sender", "size", "accepted", "reject_reason", "subject",
    "start_ts", "end_ts", "spam_score", "spam_threshold", "nrcpt", "removed"};
static const char TXN_KINDS[] = "llssslussttddlu";
static const char *const RECIP_NAMES[] = {"session_id", "txn_id", "queue_id", "address", "orig_address",
                                          "status", "relay", "dsn", "detail", "ts", "lineno"};
static const char RECIP_KINDS[] = "llssssssstl";
static const char *const REJ_NAMES[] = {"session_id", "ts", "client_ip", "client_name", "stage", "action",
                                        "queue_id", "code", "dsn", "reason", "sender", "recipient", "helo",
                                        "proto", "lineno"};
static const char REJ_KINDS[] = "ltssssssssssssl";
static const char *const SL_NAMES[] = {"session_id", "lineno"};

/* ---- state of open sessions and transactions: strings live in one arena ---- */
/* A string kept in the arena: offset << 24 | length (fields are cut from lines of at most
 * 1 MiB, see columnar_postfix.MAX_LINE_BYTES); length 0xFFFFFF is SQL NULL. 8 bytes, so the
 * state of a 1 GiB log's 3 M sessions and transactions stays in a few hundred MiB. */
typedef uint64_t sref;
#define SREF_NULL ((sref)0xFFFFFF)
/* The top bit: the string is in the arena the merge took over from the later part (arena2),
 * which it no longer copies (100 MiB and as many fresh pages on the 1 GiB bench log). */
#define SREF_AT_B ((sref)1 << 63)
#define SREF_LEN(r) ((Py_ssize_t)((r) & 0xFFFFFF))
#define SREF_OFF(r) ((Py_ssize_t)(((r) & ~SREF_AT_B) >> 24))
#define SREF_IS_NULL(r) (SREF_LEN(r) == 0xFFFFFF)

typedef struct {
    int64_t id, first_lineno, last_lineno, first_ts, last_ts, pid;
    uint64_t key;       /* its key in the conn map */
    int32_t n_lines, auth_failures, disconnects;
    uint8_t any_rfc, pid_ok;
    uint8_t headless;   /* begun by a line that does not start a connection: it may continue one
                         * of the part before this scanner's (see merge) */
    sref host, prog, ip, name, port, server, auth, tls_info, commands, ended, helo;
} session_state;

typedef struct {
    int64_t id, first_lineno, last_lineno, start_ts, end_ts;
    int64_t conn_client, conn_any;   /* index of the owning connection (client= line, any line), or -1 */
    uint64_t key;                    /* its key in the txn map */
    int32_t n_lines;
    uint8_t any_rfc, queued, picked_up, rejected, removed;
    uint8_t headless;                /* as session_state.headless */
    uint8_t sessions_seen;           /* distinct connections it was logged in: 0, 1, 2 (or more) */
    uint8_t saw_headless;            /* one of them was headless */
    sref qid, host, message_id, qmgr_from, size, nrcpt, pickup_from, pickup_uid, subject, score, required;
    sref reject_reason, reject_sender;   /* of its first reject line */
} txn_state;

/* The finished tables, in the order finish() returns them. */
enum { T_SESSIONS, T_TRANSACTIONS, T_RECIPIENTS, T_REJECTS, T_SESSION_LINES, N_TABLES };
static const char *const TABLE_NAMES[N_TABLES] = {"sessions", "transactions", "recipients", "rejects",
                                                  "session_lines"};

/* Strings a narrowed index never stores (Scanner(columns=...), a hunt's throw-away index) are not
 * kept: a field's bit is set when none of its columns is wanted. On the 1 GiB bench log the hunt's
 * columns leave out about 200 MiB of the arena, which the merge of the halves also copied. */
enum {
    D_HOST = 1 << 0, D_TLS_INFO = 1 << 1, D_TLS = 1 << 2, D_COMMANDS = 1 << 3, D_NAME = 1 << 4,
    D_PORT = 1 << 5, D_SERVER = 1 << 6, D_ENDED = 1 << 7, D_MSGID = 1 << 8, D_SUBJECT = 1 << 9,
    D_SIZE = 1 << 10, D_SPAM = 1 << 11, D_TXN_QID = 1 << 12, D_RCPT_QID = 1 << 13, D_DSN = 1 << 14,
    D_DETAIL = 1 << 15, D_REJ_QID = 1 << 16, D_REJ_NAME = 1 << 17, D_REJ_ACTION = 1 << 18,
    D_REJ_CODE = 1 << 19, D_REJ_DSN = 1 << 20, D_REJ_PROTO = 1 << 21, D_ALL = (1 << 22) - 1
};
static const struct { int table; const char *column; unsigned bit; } DROPPABLE[] = {
    {T_SESSIONS, "host", D_HOST}, {T_SESSIONS, "tls_info", D_TLS_INFO}, {T_SESSIONS, "tls", D_TLS},
    {T_SESSIONS, "commands", D_COMMANDS}, {T_SESSIONS, "client_name", D_NAME},
    {T_SESSIONS, "client_port", D_PORT}, {T_SESSIONS, "server_ip", D_SERVER},
    {T_SESSIONS, "server_port", D_SERVER}, {T_SESSIONS, "outcome", D_ENDED},
    {T_TRANSACTIONS, "message_id", D_MSGID}, {T_TRANSACTIONS, "subject", D_SUBJECT},
    {T_TRANSACTIONS, "size", D_SIZE}, {T_TRANSACTIONS, "spam_score", D_SPAM},
    {T_TRANSACTIONS, "spam_threshold", D_SPAM}, {T_TRANSACTIONS, "queue_id", D_TXN_QID},
    {T_RECIPIENTS, "queue_id", D_RCPT_QID}, {T_RECIPIENTS, "dsn", D_DSN}, {T_RECIPIENTS, "detail", D_DETAIL},
    /* a refused recipient's row in recipients comes from its reject line */
    {T_REJECTS, "queue_id", D_REJ_QID}, {T_RECIPIENTS, "queue_id", D_REJ_QID},
    {T_REJECTS, "dsn", D_REJ_DSN}, {T_RECIPIENTS, "dsn", D_REJ_DSN},
    {T_REJECTS, "client_name", D_REJ_NAME}, {T_REJECTS, "action", D_REJ_ACTION},
    {T_REJECTS, "code", D_REJ_CODE}, {T_REJECTS, "proto", D_REJ_PROTO},
};
#define KEPT(bit) (!(S->drop & (bit)))
/* An empty string: a field whose text is not kept but whose presence a wanted column tests. */
#define SREF_EMPTY ((sref)0)

/* keep_shared's cache: a text's hash and where it is in the arena (h == 0: empty slot). */
#define SHARED_SLOTS 4096
typedef struct { uint64_t h; sref r; } shared_slot;

/* A finished table's rows in the index's order (see prepare_order). */
typedef struct {
    int ready;            /* made by the table's first finish_rows / finish_table */
    int done;             /* finish_done(): its order (and what only it reads) is freed */
    int busy;             /* a call for this table runs (GIL released): one at a time */
    Py_ssize_t rows;
    void *keys;           /* recip_key, sorted (recipients, rejects); transactions need none */
    /* session_lines: the line numbers, in order, and where each rank's lines begin (ranks + 1) */
    uint32_t *lines;
    int64_t *rank_start;
} table_order;

typedef struct {
    PyObject_HEAD
    int64_t base;        /* source_id * 10^12 */
    int64_t next_lineno; /* line number of the next line fed */
    int first_year, anchor_year, anchor_month;
    int years[13], last_month;      /* the syslog year rule, month by month */
    char stamp[15];                 /* the last classic stamp parsed, and its time: a busy log */
    int64_t stamp_ts;               /* logs many lines a second (6% of the scan was stamps) */
    int stamp_ok;
    int merged;                     /* a later part was merged in: no more scan() */
    unsigned drop;                  /* D_* fields not kept (Scanner(columns=...)) */
    shared_slot shared[SHARED_SLOTS]; /* keep_shared's cache: texts kept once for many rows */
    int64_t lines, unparsed, other, understood;
    map conn, txn;                  /* key -> index into sessions / txns */
    session_state *sessions; Py_ssize_t n_sessions, cap_sessions;
    txn_state *txns; Py_ssize_t n_txns, cap_txns;
    buf arena;
    buf arena2;                     /* the later part's arena, after merge() (SREF_AT_B) */
    /* per line of a session, for session_lines: (line, session index) or (line, -1 - txn index);
     * none without transcripts (Scanner(transcripts=False): 130 MiB for the 1 GiB bench log) */
    buf line_refs;
    int transcripts;
    /* deliveries and reject lines, emitted when their transaction's owner is final */
    buf deliveries, rejects;
    table auth;
    /* finish plan (finish_begin): session index owning each transaction (or -1), the rank of
     * each session and orphan transaction in session-id order, and what sits at each rank */
    int64_t *owner, *sess_rank, *txn_rank, *rank_ref;
    Py_ssize_t ranks;
    int phase;      /* SCANNING, FINISHING (finish_begin was called), FINISHED (state freed) */
    int building;   /* finish_rows / finish_table calls running with the GIL released */
    table_order order[N_TABLES];
} Scanner;
enum { SCANNING, FINISHING, FINISHED };

/* A line of a session's transcript: its line number (below 2^32: scan() refuses more) and its
 * session (index) or -1 - its transaction (index); 8 bytes, not 16: 66 MiB on the 1 GiB bench log. */
typedef struct { uint32_t lineno; int32_t ref; } line_ref;
#define MAX_TRANSCRIPT_LINENO ((int64_t)UINT32_MAX)
typedef struct {
    int64_t lineno, ts, txn;
    sref qid, address, orig, status, relay, dsn, detail;
} delivery;
typedef struct {
    int64_t lineno, ts, conn, txn;   /* conn: session index or -1; txn: index or -1 */
    uint8_t ts_ok;
    sref qid, client_ip, client_name, stage, action, code, dsn, reason, sender, recipient, helo, proto;
} reject_line;

/* Copy v into the arena; -1 when out of memory. */
static int keep(Scanner *S, sref *field, sv v) {
    if (is_null(v)) { *field = SREF_NULL; return 0; }
    Py_ssize_t n = v.n < 0xFFFFFE ? v.n : 0xFFFFFE;
    Py_ssize_t off = S->arena.n;
    if (buf_put(&S->arena, v.p, n) < 0) return -1;
    *field = ((sref)off << 24) | (sref)n;
    return 0;
}
#define KEEP(field, value) do { if (keep(S, &(field), (value)) < 0) return -1; } while (0)

static uint64_t hash_bytes(const char *p, Py_ssize_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n, w;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    w = 0;
    if (n > i) memcpy(&w, p + i, (size_t)(n - i));
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    return h ? h : 1;
}

/* keep() for the fields whose texts repeat across rows (TLS details, command counts, program
 * and host names, relays, statuses, AUTH users, ...): a text met again is shared, not copied,
 * found through a small direct-mapped cache (a miss only costs a copy). On the 1 GiB bench log
 * these fields were 170 of the arena's 377 MiB, all fresh pages, half of them copied again by
 * the merge of the halves. */
static int keep_shared(Scanner *S, sref *field, sv v) {
    if (is_null(v)) { *field = SREF_NULL; return 0; }
    Py_ssize_t n = v.n < 0xFFFFFE ? v.n : 0xFFFFFE;
    uint64_t h = hash_bytes(v.p, n);
    shared_slot *e = &S->shared[h & (SHARED_SLOTS - 1)];
    if (e->h == h && SREF_LEN(e->r) == n && (n == 0 || memcmp(S->arena.p + SREF_OFF(e->r), v.p, (size_t)n) == 0)) {
        *field = e->r;
        return 0;
    }
    if (keep(S, field, mk(v.p, n)) < 0) return -1;
    e->h = h;
    e->r = *field;
    return 0;
}
#define KEEP_SHARED(field, value) do { if (keep_shared(S, &(field), (value)) < 0) return -1; } while (0)
#define KEEP_AS(shared, field, value) \
    do { if ((shared ? keep_shared : keep)(S, &(field), (value)) < 0) return -1; } while (0)

static inline sv got(Scanner *S, sref r) {
    if (SREF_IS_NULL(r)) return NONE;
    const char *base = (r & SREF_AT_B) ? S->arena2.p : S->arena.p;
    return mk(base ? base + SREF_OFF(r) : "", SREF_LEN(r));
}

static int cmp_sv(sv a, sv b) {  /* DuckDB's VARCHAR order: bytes, then length */
    Py_ssize_t n = a.n < b.n ? a.n : b.n;
    int c = n > 0 ? memcmp(a.p, b.p, (size_t)n) : 0;
    return c ? c : (a.n < b.n ? -1 : a.n > b.n);
}

static int keep_min(Scanner *S, sref *field, sv v, int shared) {
    if (is_null(v)) return 0;
    if (!SREF_IS_NULL(*field) && cmp_sv(v, got(S, *field)) >= 0) return 0;
    KEEP_AS(shared, *field, v);
    return 0;
}

static int keep_max(Scanner *S, sref *field, sv v, int shared) {
    if (is_null(v)) return 0;
    if (!SREF_IS_NULL(*field) && cmp_sv(v, got(S, *field)) <= 0) return 0;
    KEEP_AS(shared, *field, v);
    return 0;
}

static int keep_first(Scanner *S, sref *field, sv v, int shared) {
    if (!SREF_IS_NULL(*field) || is_null(v)) return 0;
    KEEP_AS(shared, *field, v);
    return 0;
}

static int keep_last(Scanner *S, sref *field, sv v, int shared) {
    if (is_null(v)) return 0;
    KEEP_AS(shared, *field, v);
    return 0;
}

static void *grow(void *p, Py_ssize_t *cap, Py_ssize_t need, size_t size) {
    if (need <= *cap) return p;
    Py_ssize_t c = *cap ? *cap * 2 : 1 << 14;
    while (c < need) c *= 2;
    void *q = realloc(p, (size_t)c * size);
    if (!q) return NULL;
    *cap = c;
    return q;
}

/* Year of a classic stamp's month (timestamps.SyslogYear, columnar_postfix.year_case). */
static int year_of(Scanner *S, int month) {
    if (S->years[month]) return S->years[month];
    int year;
    if (!S->last_month) {
        year = S->first_year ? S->first_year : S->anchor_year - (month > S->anchor_month ? 1 : 0);
        S->first_year = year;
    } else {
        year = S->years[S->last_month] + (month < S->last_month - 6 ? 1 : 0);
    }
    S->years[month] = year;
    S->last_month = month;
    return year;
}

/* A classic stamp parsed in year 2000 (us) moved to its year; Feb 29 of a common year becomes
 * Feb 28, as DuckDB's `+ to_years(n)` does. */
static int64_t shift_year(Scanner *S, int64_t us2000) {
    int64_t day = us2000 / 86400000000LL, rest = us2000 % 86400000000LL;
    /* civil from days (Howard Hinnant) */
    int64_t z = day + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097, yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1), m = (int)(mp < 10 ? mp + 3 : mp - 9);
    int year = year_of(S, m);
    if (m == 2 && d == 29 && days_in_month(year, 2) == 28) d = 28;
    return days_from_civil(year, m, d) * 86400000000LL + rest;
}

static int emit_i64(column *c, int64_t v) { return col_i64(c, v, 1); }

static int scan_line(Scanner *S, sv text) {
    int64_t lineno = S->next_lineno++;
    S->lines++;
    Py_ssize_t colon = FIND(text, ": ");
    sv head = colon < 0 ? text : mk(text.p, colon);
    sv msg = colon < 0 ? mk(text.p + text.n, 0) : mk(text.p + colon + 2, text.n - colon - 2);
    int rfc = text.n >= 5 && text.p[4] == '-';
    int64_t ts = 0;
    int ts_ok;
    if (rfc) {
        ts_ok = parse_rfc3339(SPLIT(head, " ", 1), &ts);
    } else if (head.n >= 15 && S->stamp_ok && memcmp(head.p, S->stamp, 15) == 0) {
        ts = S->stamp_ts;   /* the previous line's second: its month is met, so its year is set */
        ts_ok = 1;
    } else {
        ts_ok = parse_classic(mk(head.p, head.n < 15 ? head.n : 15), &ts);
        if (ts_ok) ts = shift_year(S, ts);
        if (ts_ok && head.n >= 15) {
            memcpy(S->stamp, head.p, 15);
            S->stamp_ts = ts;
        }
        S->stamp_ok = ts_ok && head.n >= 15;
    }
    sv host = split_neg(head, ' ', 2);
    sv tag = split_neg(head, ' ', 1);
    sv prog = SPLIT(tag, "[", 1);
    sv pidtok = rtrim_set(SPLIT(tag, "[", 2), "]");
    int64_t pid = 0;
    int pid_ok = pidtok.n > 0 && pidtok.n <= 18;
    for (Py_ssize_t i = 0; pid_ok && i < pidtok.n; i++) {
        if (pidtok.p[i] < '0' || pidtok.p[i] > '9') pid_ok = 0;
        else pid = pid * 10 + (pidtok.p[i] - '0');
    }
    sv daemon = split_neg(prog, '/', 1);
    int postfix = STARTS(prog, "postfix");
    int pf = ts_ok && postfix;
    if (!ts_ok) S->unparsed++;
    else if (!postfix) S->other++;
    Py_ssize_t ql = qid_len(msg);
    sv qid = ql ? mk(msg.p, ql) : NONE;
    /* message key: the queue id. Its map slot is fetched now, so that the cache miss (the map
     * of a big log's messages is far larger than the caches) overlaps the role tests below. */
    int has_qk = pf && ql;
    uint64_t qk = has_qk ? hash_parts('Q', host, qid, NONE) : 0;
    if (has_qk) map_prefetch(&S->txn, qk);
    int smtpd = EQ(daemon, "smtpd"), postscreen = EQ(daemon, "postscreen");

    int role = R_OTHER;
    if (!postfix) {
        role = R_OTHER;
    } else if (ql) {
        if (smtpd && CONTAINS(msg, ": client=")) role = R_CLIENT;
        else if (CONTAINS(msg, ": to=") && CONTAINS(msg, ", status=")) role = R_DELIVERY;
        else if (EQ(daemon, "cleanup") && CONTAINS(msg, ": message-id=")) role = R_MESSAGE_ID;
        else if (EQ(daemon, "qmgr") && CONTAINS(msg, ": from=<")) role = R_QMGR_FROM;
        else if (EQ(daemon, "qmgr") && ENDS(msg, ": removed")) role = R_REMOVED;
        else if (EQ(daemon, "pickup") && CONTAINS(msg, ": uid=")) role = R_PICKUP;
        else if (qid_reject(msg)) role = R_REJECT;
        else if (CONTAINS(msg, " header Subject: ")) role = R_SUBJECT;
        else if (CONTAINS(msg, "X-Spam-Status: ")) role = R_SPAM;
    } else if (smtpd && STARTS(msg, "connect from ")) role = R_CONNECT;
    else if (postscreen && STARTS(msg, "CONNECT from ")) role = R_CONNECT;
    else if (STARTS(msg, "disconnect from ") || STARTS(msg, "DISCONNECT [")) role = R_DISCONNECT;
    else if (STARTS(msg, "NOQUEUE: ") && reject_action_at(mk(msg.p + 9, msg.n - 9))) role = R_REJECT;
    else if (STARTS(msg, "warning: ") && CONTAINS(msg, " authentication failed")) role = R_AUTH_FAIL;
    else if (CONTAINS(msg, "TLS connection established from ")) role = R_TLS;
    else if (STARTS(msg, "lost connection after ") || STARTS(msg, "timeout after ") || STARTS(msg, "PASS ")
             || STARTS(msg, "HANGUP ") || STARTS(msg, "PREGREET ") || STARTS(msg, "too many errors after "))
        role = R_END;
    else if (smtpd && CONTAINS(msg, " from ") && CONTAINS(msg, "[")) role = R_FROM;
    if (role != R_OTHER) S->understood++;

    /* connection key: smtpd process, or postscreen's client "[ip]:port" */
    int has_ck = 0, found;
    uint64_t ck = 0;
    if (pf && smtpd) {
        has_ck = 1;
        ck = hash_parts('S', host, prog, pid_ok ? pidtok : NONE);
    } else if (pf && postscreen && CONTAINS(msg, "[")) {
        has_ck = 1;
        ck = hash_parts('P', host, rtrim_set(SPLIT(SPLIT(msg, "[", 2), " ", 1), ":"), NONE);
    }

    session_state *ss = NULL;
    int64_t conn_session = 0;
    if (has_ck) {
        int64_t *slot = map_slot(&S->conn, ck, &found);
        if (!slot) return -1;
        if (!found || role == R_CONNECT) {   /* a new connection (or the first line of a key) */
            session_state *arr = grow(S->sessions, &S->cap_sessions, S->n_sessions + 1, sizeof *arr);
            if (!arr) return -1;
            S->sessions = arr;
            ss = &arr[S->n_sessions];
            memset(ss, 0, sizeof *ss);
            ss->id = S->base + lineno;
            ss->key = ck;
            ss->headless = (uint8_t)(role != R_CONNECT);
            ss->first_lineno = lineno;
            ss->first_ts = ts;
            ss->pid = pid;
            ss->pid_ok = (uint8_t)pid_ok;
            ss->host = ss->prog = ss->ip = ss->name = ss->port = ss->server = SREF_NULL;
            ss->auth = ss->tls_info = ss->commands = ss->ended = ss->helo = SREF_NULL;
            if (KEPT(D_HOST)) KEEP_SHARED(ss->host, host);
            KEEP_SHARED(ss->prog, prog);
            *slot = S->n_sessions++;
        } else {
            ss = &S->sessions[*slot];
        }
        conn_session = ss->id;
        ss->last_lineno = lineno;
        ss->last_ts = ts;
        ss->n_lines++;
        ss->any_rfc |= (uint8_t)rfc;
        if (S->transcripts) {
            if (lineno > MAX_TRANSCRIPT_LINENO) return -2;
            line_ref r = {(uint32_t)lineno, (int32_t)(ss - S->sessions)};
            if (buf_put(&S->line_refs, &r, sizeof r) < 0) return -1;
        }
    }
    txn_state *tx = NULL;
    if (has_qk) {
        int64_t *slot = map_slot(&S->txn, qk, &found);
        if (!slot) return -1;
        if (!found || role == R_CLIENT || role == R_PICKUP) {
            txn_state *arr = grow(S->txns, &S->cap_txns, S->n_txns + 1, sizeof *arr);
            if (!arr) return -1;
            S->txns = arr;
            tx = &arr[S->n_txns];
            memset(tx, 0, sizeof *tx);
            tx->id = S->base + lineno;
            tx->key = qk;
            tx->headless = (uint8_t)(role != R_CLIENT && role != R_PICKUP);
            tx->conn_client = tx->conn_any = -1;
            tx->first_lineno = lineno;
            tx->start_ts = tx->end_ts = ts;
            tx->qid = tx->host = tx->message_id = tx->qmgr_from = tx->size = tx->nrcpt = SREF_NULL;
            tx->pickup_from = tx->pickup_uid = tx->subject = tx->score = tx->required = SREF_NULL;
            tx->reject_reason = tx->reject_sender = SREF_NULL;
            if (KEPT(D_TXN_QID)) KEEP(tx->qid, qid);
            if (KEPT(D_HOST)) KEEP_SHARED(tx->host, host);
            *slot = S->n_txns++;
        } else {
            tx = &S->txns[*slot];
        }
        tx->last_lineno = lineno;
        tx->n_lines++;
        if (ts < tx->start_ts) tx->start_ts = ts;
        if (ts > tx->end_ts) tx->end_ts = ts;
        tx->any_rfc |= (uint8_t)rfc;
        if (has_ck) {  /* max(conn_session): the latest connection, i.e. the highest index */
            int64_t idx = (int64_t)(ss - S->sessions);
            if (tx->sessions_seen == 0 || (tx->sessions_seen == 1 && idx != tx->conn_any)) tx->sessions_seen++;
            tx->saw_headless |= ss->headless;
            if (role == R_CLIENT && idx > tx->conn_client) tx->conn_client = idx;
            if (idx > tx->conn_any) tx->conn_any = idx;
        } else {
            if (S->transcripts) {
                if (lineno > MAX_TRANSCRIPT_LINENO) return -2;
                line_ref r = {(uint32_t)lineno, (int32_t)(-1 - (tx - S->txns))};
                if (buf_put(&S->line_refs, &r, sizeof r) < 0) return -1;
            }
        }
    }

    /* the fields of the line's role (columnar_postfix.stage_lines computes the same) */
    if (ss && role != R_OTHER) {
        if (keep_first(S, &ss->ip, SPLIT(SPLIT(msg, "[", 2), "]", 1), 0) < 0) return -1;
        if (KEPT(D_NAME) && smtpd && SREF_IS_NULL(ss->name)) {
            /* replace(<last word before '['>, 'client=', '') */
            sv w = split_neg(SPLIT(msg, "[", 1), ' ', 1);
            Py_ssize_t off = S->arena.n, i = 0;
            for (;;) {
                Py_ssize_t hit = find(mk(w.p + i, w.n - i), "client=", 7);
                Py_ssize_t upto = hit < 0 ? w.n - i : hit;
                if (buf_put(&S->arena, w.p + i, upto) < 0) return -1;
                if (hit < 0) break;
                i += hit + 7;
            }
            Py_ssize_t n = S->arena.n - off;
            ss->name = ((sref)off << 24) | (sref)(n < 0xFFFFFE ? n : 0xFFFFFE);
        }
        switch (role) {
        case R_CONNECT:
            if (postscreen) {
                if (KEPT(D_PORT) && keep_max(S, &ss->port, SPLIT(SPLIT(msg, "]:", 2), " ", 1), 0) < 0) return -1;
                if (KEPT(D_SERVER) && keep_max(S, &ss->server, SPLIT(msg, " to ", 2), 1) < 0) return -1;
            }
            break;
        case R_CLIENT:
            if (CONTAINS(msg, "sasl_username=")) {
                sv tail = SPLIT(msg, ", sasl_method=", 2);
                if (keep_last(S, &ss->auth, tail, 1) < 0) return -1;
                /* AUTH success */
                table *t = &S->auth;
                sv ip = SPLIT(SPLIT(msg, "[", 2), "]", 1);
                sv user = SPLIT(SPLIT(tail, "sasl_username=", 2), ",", 1);
                sv method = SPLIT(tail, ",", 1);
                if (emit_i64(&t->cols[0], lineno) < 0 || emit_i64(&t->cols[1], conn_session) < 0
                    || col_i64(&t->cols[2], ts, 1) < 0 || col_str(&t->cols[3], ip.n ? ip : NONE) < 0
                    || col_str(&t->cols[4], user.n ? user : NONE) < 0
                    || col_str(&t->cols[5], method.n ? method : NONE) < 0
                    || col_u8(&t->cols[6], 1) < 0 || col_str(&t->cols[7], NONE) < 0)
                    return -1;
            }
            break;
        case R_TLS:
            if (KEPT(D_TLS_INFO)) {
                if (keep_min(S, &ss->tls_info, SPLIT(msg, "]: ", 2), 1) < 0) return -1;
            } else if (KEPT(D_TLS)) {
                ss->tls_info = SREF_EMPTY;
            }
            break;
        case R_DISCONNECT:
            ss->disconnects++;
            if (KEPT(D_COMMANDS) && keep_max(S, &ss->commands, SPLIT(msg, "] ", 2), 1) < 0) return -1;
            break;
        case R_END: {
            if (!KEPT(D_ENDED)) break;
            int lower = 0;
            sv v;
            if (STARTS(msg, "PASS ")) { v = SPLIT(msg, " [", 1); lower = 1; }
            else if (STARTS(msg, "HANGUP ") || STARTS(msg, "PREGREET ")) { v = SPLIT(msg, " ", 1); lower = 1; }
            else v = SPLIT(msg, " from ", 1);
            if (keep_last(S, &ss->ended, v, 1) < 0) return -1;
            if (lower) {
                char *p = S->arena.p + SREF_OFF(ss->ended);
                for (Py_ssize_t i = 0; i < SREF_LEN(ss->ended); i++)
                    if (p[i] >= 'A' && p[i] <= 'Z') p[i] = (char)(p[i] + 32);
            }
            break;
        }
        case R_REJECT:
            if (CONTAINS(msg, "helo=<") && keep_last(S, &ss->helo, ANGLE(msg, " helo=<"), 0) < 0) return -1;
            break;
        case R_AUTH_FAIL:
            ss->auth_failures++;
            break;
        default:
            break;
        }
    }
    if (tx) {
        switch (role) {
        case R_MESSAGE_ID:
            if (!KEPT(D_MSGID)) tx->message_id = SREF_EMPTY;  /* `accepted` tests that it was logged */
            else if (keep_min(S, &tx->message_id, trim_set(SPLIT(msg, "message-id=", 2), "<> "), 0) < 0) return -1;
            break;
        case R_QMGR_FROM:
            if (!tx->queued) {
                KEEP(tx->qmgr_from, ANGLE(msg, ": from=<"));
                if (KEPT(D_SIZE)) KEEP(tx->size, SPLIT(SPLIT(msg, ", size=", 2), ",", 1));
                KEEP(tx->nrcpt, SPLIT(SPLIT(msg, ", nrcpt=", 2), " ", 1));
            }
            tx->queued = 1;
            break;
        case R_PICKUP:
            tx->picked_up = 1;
            if (keep_min(S, &tx->pickup_from, ANGLE(msg, " from=<"), 0) < 0) return -1;
            if (keep_min(S, &tx->pickup_uid, SPLIT(SPLIT(msg, "uid=", 2), " ", 1), 0) < 0) return -1;
            break;
        case R_REJECT:
            if (!tx->rejected) tx->rejected = 1;   /* 2 once its first reject line is cut, below */
            break;
        case R_SUBJECT:
            if (KEPT(D_SUBJECT)
                && keep_first(S, &tx->subject, SPLIT(SPLIT(msg, " header Subject: ", 2), " from ", 1), 0) < 0)
                return -1;
            break;
        case R_SPAM:
            if (KEPT(D_SPAM) && SREF_IS_NULL(tx->score)) {
                KEEP(tx->score, SPLIT(SPLIT(msg, " score=", 2), " ", 1));
                KEEP(tx->required, SPLIT(SPLIT(msg, " required=", 2), " ", 1));
            }
            break;
        case R_REMOVED:
            tx->removed = 1;
            break;
        case R_DELIVERY: {
            /* "QID: to=<a>, [orig_to=<b>,] relay=..., delay=..., dsn=..., status=... (detail)" */
            sv body = mk(msg.p + ql + 2, msg.n - ql - 2);
            sv st = SPLIT(body, ", status=", 2);
            sv address = STARTS(body, "to=<") ? ANGLE(body, "to=<")
                         : SPLIT(body.n >= 3 ? mk(body.p + 3, body.n - 3) : mk(body.p + body.n, 0), ",", 1);
            sv orig;
            if (CONTAINS(body, ", orig_to=<")) orig = ANGLE(body, ", orig_to=<");
            else { orig = SPLIT(SPLIT(body, ", orig_to=", 2), ",", 1); if (orig.n == 0) orig = NONE; }
            sv status = SPLIT(st, " ", 1);
            sv relay = SPLIT(SPLIT(body, ", relay=", 2), ", ", 1);
            sv dsn = SPLIT(SPLIT(body, ", dsn=", 2), ",", 1);
            Py_ssize_t paren = FIND(st, " (");
            sv detail = paren < 0 ? NONE : rtrim_set(mk(st.p + paren + 2, st.n - paren - 2), ")");
            delivery dv = {lineno, ts, (int64_t)(tx - S->txns), SREF_NULL, SREF_NULL, SREF_NULL, SREF_NULL,
                           SREF_NULL, SREF_NULL, SREF_NULL};
            if (KEPT(D_RCPT_QID)) KEEP(dv.qid, qid);
            KEEP(dv.address, address);
            KEEP(dv.orig, orig);
            KEEP_SHARED(dv.status, status.n ? status : NONE);
            KEEP_SHARED(dv.relay, relay.n ? relay : NONE);
            if (KEPT(D_DSN)) KEEP_SHARED(dv.dsn, dsn.n ? dsn : NONE);
            if (KEPT(D_DETAIL)) KEEP(dv.detail, detail);
            if (buf_put(&S->deliveries, &dv, sizeof dv) < 0) return -1;
            break;
        }
        default:
            break;
        }
    }
    if (role == R_AUTH_FAIL) {
        table *t = &S->auth;
        sv ip = split_neg(SPLIT(msg, "]: SASL", 1), '[', 1);
        sv user = SPLIT(SPLIT(msg, "sasl_username=", 2), ",", 1);
        sv method = SPLIT(SPLIT(msg, ": SASL ", 2), " ", 1);
        sv reason = SPLIT(SPLIT(msg, "authentication failed: ", 2), ", sasl_username=", 1);
        if (emit_i64(&t->cols[0], lineno) < 0 || col_i64(&t->cols[1], conn_session, has_ck) < 0
            || col_i64(&t->cols[2], ts, ts_ok) < 0
            || col_str(&t->cols[3], ip.n ? ip : NONE) < 0 || col_str(&t->cols[4], user.n ? user : NONE) < 0
            || col_str(&t->cols[5], method.n ? method : NONE) < 0 || col_u8(&t->cols[6], 0) < 0
            || col_str(&t->cols[7], reason.n ? reason : NONE) < 0)
            return -1;
    } else if (role == R_REJECT) {
        /* "NOQUEUE|QID: ACTION: STAGE from name[ip](:port): [CODE ][D.S.N ][<data>: ]reason; from=<> to=<> ..." */
        reject_line rl = {lineno, ts, ss ? (int64_t)(ss - S->sessions) : -1, tx ? (int64_t)(tx - S->txns) : -1,
                          (uint8_t)ts_ok, SREF_NULL, SREF_NULL, SREF_NULL, SREF_NULL, SREF_NULL, SREF_NULL,
                          SREF_NULL, SREF_NULL, SREF_NULL, SREF_NULL, SREF_NULL, SREF_NULL};
        sv p1 = SPLIT(msg, ": ", 1), action = SPLIT(msg, ": ", 2), who = SPLIT(msg, ": ", 3);
        Py_ssize_t skip = p1.n + action.n + who.n + 6;
        sv rest = skip <= msg.n ? mk(msg.p + skip, msg.n - skip) : mk(msg.p + msg.n, 0);
        sv code = NONE;
        if (rest.n >= 4 && rest.p[0] >= '2' && rest.p[0] <= '5' && rest.p[0] != '3' && rest.p[1] >= '0'
            && rest.p[1] <= '9' && rest.p[2] >= '0' && rest.p[2] <= '9' && rest.p[3] == ' ')
            code = mk(rest.p, 3);
        sv rest2 = is_null(code) ? rest : mk(rest.p + 4, rest.n - 4);
        sv word = SPLIT(rest2, " ", 1), dsn = NONE;
        if (is_dsn(word)) dsn = word;
        sv text = is_null(dsn) ? rest2
                : (dsn.n + 1 <= rest2.n ? mk(rest2.p + dsn.n + 1, rest2.n - dsn.n - 1) : mk(rest2.p + rest2.n, 0));
        text = trim_set(SPLIT(SPLIT(text, "; from=<", 1), ", from=<", 1), " ");
        Py_ssize_t gt = FIND(text, ">: ");
        sv reason = (STARTS(text, "<") && gt >= 0) ? mk(text.p + gt + 3, text.n - gt - 3) : text;
        while (reason.n > 0 && (reason.p[0] == ':' || reason.p[0] == ' ')) { reason.p++; reason.n--; }
        sv name = nullif_empty(SPLIT(SPLIT(who, " from ", 2), "[", 1));
        if (!is_null(name) && EQ(name, "unknown")) name = NONE;
        sv sender = ANGLE(msg, "; from=<");
        if (KEPT(D_REJ_QID)) KEEP(rl.qid, qid);
        KEEP(rl.client_ip, nullif_empty(SPLIT(SPLIT(who, "[", 2), "]", 1)));
        if (KEPT(D_REJ_NAME)) KEEP(rl.client_name, name);
        KEEP_SHARED(rl.stage, nullif_empty(SPLIT(who, " ", 1)));
        if (KEPT(D_REJ_ACTION)) KEEP_SHARED(rl.action, action);
        if (KEPT(D_REJ_CODE)) KEEP_SHARED(rl.code, code);
        if (KEPT(D_REJ_DSN)) KEEP_SHARED(rl.dsn, dsn);
        KEEP(rl.reason, reason);
        KEEP(rl.sender, sender);
        KEEP(rl.recipient, ANGLE(msg, " to=<"));
        KEEP(rl.helo, ANGLE(msg, " helo=<"));
        if (KEPT(D_REJ_PROTO)) KEEP_SHARED(rl.proto, nullif_empty(rtrim_set(SPLIT(SPLIT(msg, "proto=", 2), " ", 1), ",")));
        if (tx && SREF_IS_NULL(tx->reject_reason) && tx->rejected < 2) {  /* arg_min(.., lineno): the first */
            tx->reject_reason = rl.reason;
            tx->reject_sender = rl.sender;
            tx->rejected = 2;
        }
        if (buf_put(&S->rejects, &rl, sizeof rl) < 0) return -1;
    }
    return 0;
}

static const char scan_doc[] =
    "scan(data) -> (rows, max_line_bytes, tables, seen)\n\n"
    "Feed whole lines (data ends at a newline, or is the end of the file). seen has SAW_CR when\n"
    "a byte was a CR and SAW_NOT_ASCII when one was not ASCII (left to the caller). tables maps a name\n"
    "('auth': the AUTH events of these lines) to its columns: name -> (kind, values, data,\n"
    "validity, nulls, rows); kind 'l' int64, 't' timestamp (us), 'u' uint8, 'd' double, 's'\n"
    "string (values = int32 offsets into data); validity is an Arrow bitmap or None. Sessions,\n"
    "transactions, deliveries and rejects are returned by finish(), when their owners are final.";

static PyObject *tables_dict(table **ts, int n) {
    PyObject *out = PyDict_New();
    if (!out) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *d = table_dict(ts[i]);
        if (!d || PyDict_SetItemString(out, ts[i]->name, d) < 0) { Py_XDECREF(d); Py_DECREF(out); return NULL; }
        Py_DECREF(d);
    }
    return out;
}

static PyObject *Scanner_scan(Scanner *S, PyObject *args) {
    Py_buffer view;
    if (S->phase != SCANNING || S->merged) {
        PyErr_SetString(PyExc_RuntimeError, S->merged ? "scan() after merge()" : "scan() after finish()");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    table_reset(&S->auth);
    const char *p = view.buf, *end = p + view.len;
    Py_ssize_t rows = 0, longest = 0;
    int failed = 0, seen = 0;
    /* No Python object is touched in the loop (plain malloc, no Python errors), so other
     * threads (DuckDB inserts, zstd) run meanwhile. A Scanner is not thread-safe itself:
     * columnar_postfix feeds it from one thread at a time. */
    Py_BEGIN_ALLOW_THREADS
    FOR_EACH_LINE(p, end, line, nl, seen, {
        Py_ssize_t n = nl - line;
        if (n > longest) longest = n;
        int rc = scan_line(S, mk(line, n));
        if (rc < 0) { failed = rc; goto scanned; }
        rows++;
    });
scanned:
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (failed == -2) {
        PyErr_SetString(PyExc_OverflowError, "a log of more than 4,294,967,295 lines: too long for the compiled scanner's transcripts");
        return NULL;
    }
    if (failed) return PyErr_NoMemory();
    table *ts[1] = {&S->auth};
    PyObject *tables = tables_dict(ts, 1);
    if (!tables) return NULL;
    return Py_BuildValue("(nnNi)", rows, longest, tables, seen);
}

static void release_state(Scanner *S);

/* ---- a file in two parts, scanned side by side ----
 * The scanner of the later part first skips the earlier part's lines (skip: it counts them and
 * runs the year rule over their stamps, so its line numbers, ids and years are the file's),
 * then scans its own. A connection or message it meets without its first line is "headless":
 * it may continue one that is open at the end of the earlier part. merge() folds those into
 * the earlier scanner's, field by field with the rule each field has (first, last, min, max,
 * sum), which gives the rows one scanner would have made over the whole file. */

static const char skip_doc[] =
    "skip(data) -> lines: account for lines of an earlier part of the file (line numbers, the\n"
    "year rule) without scanning them; before the first scan() of a later part's scanner.";

static PyObject *Scanner_skip(Scanner *S, PyObject *args) {
    Py_buffer view;
    if (S->phase != SCANNING || S->merged || S->lines) {
        PyErr_SetString(PyExc_RuntimeError, "skip() only before the first scan()");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    const char *p = view.buf, *end = p + view.len;
    Py_ssize_t rows = 0;
    int seen = 0;   /* (the earlier part's own scanner reports its bytes) */
    Py_BEGIN_ALLOW_THREADS
    FOR_EACH_LINE(p, end, line, nl, seen, {
        sv text = mk(line, nl - line);
        S->next_lineno++;
        rows++;
        /* The stamp as scan_line reads it; only classic stamps move the year rule, and only
         * the first stamp of a month the rule has not met yet can change it (year_of): a line
         * whose first three bytes are no month, or a month met already, is passed over. */
        int mon = text.n >= 3 && !(text.n >= 5 && text.p[4] == '-') ? month_of(text) : 0;
        if (mon && !S->years[mon]) {
            Py_ssize_t colon = FIND(text, ": ");
            sv head = colon < 0 ? text : mk(text.p, colon);
            int64_t ts;
            if (parse_classic(mk(head.p, head.n < 15 ? head.n : 15), &ts)) shift_year(S, ts);
        }
    });
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(rows);
}

static inline sref rebase(sref r) {
    return SREF_IS_NULL(r) ? r : r | SREF_AT_B;
}

static void fold_min(Scanner *S, sref *a, sref b) {
    if (!SREF_IS_NULL(b) && (SREF_IS_NULL(*a) || cmp_sv(got(S, b), got(S, *a)) < 0)) *a = b;
}
static void fold_max(Scanner *S, sref *a, sref b) {
    if (!SREF_IS_NULL(b) && (SREF_IS_NULL(*a) || cmp_sv(got(S, b), got(S, *a)) > 0)) *a = b;
}
static void fold_first(sref *a, sref b) { if (SREF_IS_NULL(*a)) *a = b; }
static void fold_last(sref *a, sref b) { if (!SREF_IS_NULL(b)) *a = b; }

/* b (lines after a's) continues the connection a. */
static void fold_session(Scanner *S, session_state *a, const session_state *b) {
    a->last_lineno = b->last_lineno;
    a->last_ts = b->last_ts;
    a->n_lines += b->n_lines;
    a->auth_failures += b->auth_failures;
    a->disconnects += b->disconnects;
    a->any_rfc |= b->any_rfc;
    fold_first(&a->ip, b->ip);
    fold_first(&a->name, b->name);
    fold_max(S, &a->port, b->port);
    fold_max(S, &a->server, b->server);
    fold_last(&a->auth, b->auth);
    fold_min(S, &a->tls_info, b->tls_info);
    fold_max(S, &a->commands, b->commands);
    fold_last(&a->ended, b->ended);
    fold_last(&a->helo, b->helo);
}

/* b continues the message a; its connection indices are already the merged ones. */
static void fold_txn(Scanner *S, txn_state *a, const txn_state *b) {
    a->last_lineno = b->last_lineno;
    a->n_lines += b->n_lines;
    if (b->start_ts < a->start_ts) a->start_ts = b->start_ts;
    if (b->end_ts > a->end_ts) a->end_ts = b->end_ts;
    a->any_rfc |= b->any_rfc;
    if (b->conn_client > a->conn_client) a->conn_client = b->conn_client;
    if (b->conn_any > a->conn_any) a->conn_any = b->conn_any;
    fold_min(S, &a->message_id, b->message_id);
    if (!a->queued && b->queued) { a->qmgr_from = b->qmgr_from; a->size = b->size; a->nrcpt = b->nrcpt; }
    a->queued |= b->queued;
    a->picked_up |= b->picked_up;
    fold_min(S, &a->pickup_from, b->pickup_from);
    fold_min(S, &a->pickup_uid, b->pickup_uid);
    if (!a->rejected && b->rejected) {
        a->rejected = b->rejected; a->reject_reason = b->reject_reason; a->reject_sender = b->reject_sender;
    }
    fold_first(&a->subject, b->subject);
    if (SREF_IS_NULL(a->score)) { a->score = b->score; a->required = b->required; }
    a->removed |= b->removed;
}

/* Whether B's state can be folded into A's exactly. A message of B logged in two connections,
 * one of them headless, cannot: which of them is "the latest" depends on where the headless
 * one lands. Real logs do not do this (a queue id is logged by the smtpd that received it);
 * the caller then scans the later part again with A. */
static int mergeable(const Scanner *B) {
    for (Py_ssize_t j = 0; j < B->n_txns; j++)
        if (B->txns[j].sessions_seen > 1 && B->txns[j].saw_headless) return 0;
    return 1;
}

/* Give the whole pages of [p, p + n) back to the kernel: the part of B's state the merge has
 * copied, which is never read again. The merge's copy faults in about 500 MiB of fresh pages
 * for the 1 GiB bench log; pages just given back are still backed by the VM's host, while
 * fresh ones after a pause are not: 5-13 us a page (1.5 s of the merge), against about 2 us.
 * Whole pages only, so a neighbouring allocation's bytes (and malloc's own) are never touched. */
static void drop_pages(const void *p, size_t n) {
    static uintptr_t page;
    if (!page) { long ps = sysconf(_SC_PAGESIZE); page = ps > 0 ? (uintptr_t)ps : 4096; }
    uintptr_t start = ((uintptr_t)p + page - 1) & ~(page - 1), end = ((uintptr_t)p + n) & ~(page - 1);
    if (end > start) madvise((void *)start, end - start, MADV_DONTNEED);
}

/* Copied state is dropped in steps of this many bytes. */
#define DROP_STEP ((size_t)2 << 20)

/* Items [*dropped, upto) of B's array base (each size bytes) are copied: drop them once a step's worth. */
static void drop_copied(const void *base, size_t size, Py_ssize_t *dropped, Py_ssize_t upto, int last) {
    if (!last && (size_t)(upto - *dropped) * size < DROP_STEP) return;
    drop_pages((const char *)base + (size_t)*dropped * size, (size_t)(upto - *dropped) * size);
    *dropped = upto;
}

static void rebase_session(session_state *b) {
    sref *f[] = {&b->host, &b->prog, &b->ip, &b->name, &b->port, &b->server, &b->auth, &b->tls_info,
                 &b->commands, &b->ended, &b->helo};
    for (size_t k = 0; k < sizeof f / sizeof *f; k++) *f[k] = rebase(*f[k]);
}

static void rebase_txn(txn_state *b, const int64_t *smap) {
    sref *f[] = {&b->qid, &b->host, &b->message_id, &b->qmgr_from, &b->size, &b->nrcpt, &b->pickup_from,
                 &b->pickup_uid, &b->subject, &b->score, &b->required, &b->reject_reason, &b->reject_sender};
    for (size_t k = 0; k < sizeof f / sizeof *f; k++) *f[k] = rebase(*f[k]);
    if (b->conn_client >= 0) b->conn_client = smap[b->conn_client];
    if (b->conn_any >= 0) b->conn_any = smap[b->conn_any];
}

/* B's string arena becomes A's second arena (its strings' srefs get SREF_AT_B); the rest of B
 * is moved into A's arrays, and what is moved of B is dropped as it goes (drop_pages): B is
 * unusable once this has begun, and is released by the caller whatever the outcome. */
static int merge_state(Scanner *A, Scanner *B, int64_t *moved, Py_ssize_t *n_moved) {
    Py_ssize_t nbs = B->n_sessions, nbt = B->n_txns;
    int64_t *smap = malloc((size_t)(nbs + 1) * 8), *tmap = malloc((size_t)(nbt + 1) * 8);
    /* B's sessions and messages that continue one of A's (copies: B's arrays are dropped as they
     * are moved), with their index in A, folded once the strings are copied */
    struct { session_state b; int64_t at; } *fold_s = NULL;
    struct { txn_state b; int64_t at; } *fold_t = NULL;
    Py_ssize_t n_fold_s = 0, cap_fold_s = 0, n_fold_t = 0, cap_fold_t = 0, dropped = 0;
    int rc = -1;
    *n_moved = 0;
    if (!smap || !tmap) goto out;
    buf_free(&A->arena2);
    A->arena2 = B->arena;
    B->arena = (buf){0};
    session_state *sa = grow(A->sessions, &A->cap_sessions, A->n_sessions + nbs + 1, sizeof *sa);
    if (!sa) goto out;
    A->sessions = sa;
    txn_state *ta = grow(A->txns, &A->cap_txns, A->n_txns + nbt + 1, sizeof *ta);
    if (!ta) goto out;
    A->txns = ta;
    for (Py_ssize_t i = 0; i < nbs; i++) {
        const session_state *b = &B->sessions[i];
        int64_t *slot = b->headless ? map_find(&A->conn, b->key) : NULL;
        if (slot) {
            void *f = grow(fold_s, &cap_fold_s, n_fold_s + 1, sizeof *fold_s);
            if (!f) goto out;
            fold_s = f;
            smap[i] = *slot;
            fold_s[n_fold_s].b = *b;
            fold_s[n_fold_s].at = *slot;
            rebase_session(&fold_s[n_fold_s++].b);
            moved[2 * *n_moved] = b->id;
            moved[2 * *n_moved + 1] = A->sessions[*slot].id;
            (*n_moved)++;
        } else {
            smap[i] = A->n_sessions;
            A->sessions[A->n_sessions] = *b;
            rebase_session(&A->sessions[A->n_sessions++]);
        }
        drop_copied(B->sessions, sizeof *b, &dropped, i + 1, i + 1 == nbs);
    }
    dropped = 0;
    for (Py_ssize_t j = 0; j < nbt; j++) {
        const txn_state *b = &B->txns[j];
        int64_t *slot = b->headless ? map_find(&A->txn, b->key) : NULL;
        if (slot) {
            void *f = grow(fold_t, &cap_fold_t, n_fold_t + 1, sizeof *fold_t);
            if (!f) goto out;
            fold_t = f;
            tmap[j] = *slot;
            fold_t[n_fold_t].b = *b;
            fold_t[n_fold_t].at = *slot;
            rebase_txn(&fold_t[n_fold_t++].b, smap);
        } else {
            tmap[j] = A->n_txns;
            A->txns[A->n_txns] = *b;
            rebase_txn(&A->txns[A->n_txns++], smap);
        }
        drop_copied(B->txns, sizeof *b, &dropped, j + 1, j + 1 == nbt);
    }
    /* transcript lines, deliveries and rejects: B's after A's, so still in file order */
    Py_ssize_t nl = B->line_refs.n / (Py_ssize_t)sizeof(line_ref);
    if (buf_reserve(&A->line_refs, B->line_refs.n) < 0) goto out;
    dropped = 0;
    for (Py_ssize_t k = 0; k < nl; k++) {
        line_ref r = ((const line_ref *)B->line_refs.p)[k];
        r.ref = (int32_t)(r.ref >= 0 ? smap[r.ref] : -1 - tmap[-1 - r.ref]);
        buf_put(&A->line_refs, &r, sizeof r);
        drop_copied(B->line_refs.p, sizeof r, &dropped, k + 1, k + 1 == nl);
    }
    Py_ssize_t nd = B->deliveries.n / (Py_ssize_t)sizeof(delivery);
    if (buf_reserve(&A->deliveries, B->deliveries.n) < 0) goto out;
    dropped = 0;
    for (Py_ssize_t k = 0; k < nd; k++) {
        delivery d = ((const delivery *)B->deliveries.p)[k];
        d.txn = tmap[d.txn];
        sref *f[] = {&d.qid, &d.address, &d.orig, &d.status, &d.relay, &d.dsn, &d.detail};
        for (size_t m = 0; m < sizeof f / sizeof *f; m++) *f[m] = rebase(*f[m]);
        buf_put(&A->deliveries, &d, sizeof d);
        drop_copied(B->deliveries.p, sizeof d, &dropped, k + 1, k + 1 == nd);
    }
    Py_ssize_t nr = B->rejects.n / (Py_ssize_t)sizeof(reject_line);
    if (buf_reserve(&A->rejects, B->rejects.n) < 0) goto out;
    dropped = 0;
    for (Py_ssize_t k = 0; k < nr; k++) {
        reject_line r = ((const reject_line *)B->rejects.p)[k];
        if (r.conn >= 0) r.conn = smap[r.conn];
        if (r.txn >= 0) r.txn = tmap[r.txn];
        sref *f[] = {&r.qid, &r.client_ip, &r.client_name, &r.stage, &r.action, &r.code, &r.dsn, &r.reason,
                     &r.sender, &r.recipient, &r.helo, &r.proto};
        for (size_t m = 0; m < sizeof f / sizeof *f; m++) *f[m] = rebase(*f[m]);
        buf_put(&A->rejects, &r, sizeof r);
        drop_copied(B->rejects.p, sizeof r, &dropped, k + 1, k + 1 == nr);
    }
    /* the folds (B's strings are A's second arena): sessions first, as before */
    for (Py_ssize_t k = 0; k < n_fold_s; k++)
        fold_session(A, &A->sessions[fold_s[k].at], &fold_s[k].b);
    for (Py_ssize_t k = 0; k < n_fold_t; k++)
        fold_txn(A, &A->txns[fold_t[k].at], &fold_t[k].b);
    A->lines += B->lines;
    A->unparsed += B->unparsed;
    A->other += B->other;
    A->understood += B->understood;
    /* B ran the year rule over A's lines and then its own */
    A->next_lineno = B->next_lineno;
    A->first_year = B->first_year;
    A->last_month = B->last_month;
    memcpy(A->years, B->years, sizeof A->years);
    rc = 0;
out:
    free(smap);
    free(tmap);
    free(fold_s);
    free(fold_t);
    return rc;
}

static const char merge_doc[] =
    "merge(later) -> [(old_session_id, new_session_id), ...] or None\n\n"
    "Fold the scanner of the part right after this one (started with skip() over this part) into\n"
    "this one; then only finish() or finish_begin() may follow. The pairs rename the session ids\n"
    "of AUTH rows that later's scan() gave for connections that continue one of this part. None:\n"
    "the parts cannot be merged exactly (nothing changed; scan the later part with this scanner).\n"
    "later is used up either way; after a MemoryError neither scanner can be used.";

static PyObject *Scanner_merge(Scanner *A, PyObject *args) {
    Scanner *B;
    if (!PyArg_ParseTuple(args, "O!", Py_TYPE(A), &B)) return NULL;
    if (A == B || A->phase != SCANNING || B->phase != SCANNING || A->merged || B->merged) {
        PyErr_SetString(PyExc_RuntimeError, "merge() needs two different scanners, both still scanning");
        return NULL;
    }
    if (A->drop != B->drop) {
        PyErr_SetString(PyExc_ValueError, "merge() needs two scanners made with the same columns");
        return NULL;
    }
    if (!mergeable(B)) Py_RETURN_NONE;
    int64_t *moved = malloc((size_t)(B->n_sessions + 1) * 16);
    Py_ssize_t n_moved = 0;
    int failed = 1;
    if (moved) {
        Py_BEGIN_ALLOW_THREADS
        failed = merge_state(A, B, moved, &n_moved);
        Py_END_ALLOW_THREADS
    }
    release_state(B);   /* dropped as it was copied: unusable whatever the outcome */
    B->phase = FINISHED;
    if (failed) {       /* out of memory part-way: A may hold part of B, so it goes too */
        free(moved);
        release_state(A);
        A->phase = FINISHED;
        return PyErr_NoMemory();
    }
    A->merged = 1;
    PyObject *pairs = PyList_New(n_moved);
    for (Py_ssize_t i = 0; pairs && i < n_moved; i++) {
        PyObject *pair = Py_BuildValue("(LL)", (long long)moved[2 * i], (long long)moved[2 * i + 1]);
        if (!pair) { Py_CLEAR(pairs); break; }
        PyList_SET_ITEM(pairs, i, pair);
    }
    free(moved);
    return pairs;
}

/* ---- finish: the final rows ---- */
static int col_f64(column *c, double v, int ok) {
    if (c->skip) return 0;
    if (!ok) v = 0;
    if (buf_put(&c->values, &v, 8) < 0) return -1;
    return col_valid(c, ok);
}

/* prefix || s (SQL NULL when s is NULL) */
static int col_cat(column *c, const char *prefix, sv s) {
    if (c->skip) return 0;
    if (is_null(s)) return col_str(c, NONE);
    Py_ssize_t k = (Py_ssize_t)strlen(prefix);
    if (col_str(c, mk(prefix, k)) < 0) return -1;   /* then extend the value just written */
    if (buf_put(&c->data, s.p, s.n) < 0) return -1;
    if (c->data.n > INT32_MAX) return -1;
    ((int32_t *)c->values.p)[c->rows] = (int32_t)c->data.n;
    return 0;
}

static sv strip_spaces(sv s) {
    while (s.n > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) { s.p++; s.n--; }
    while (s.n > 0 && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) s.n--;
    return s;
}

/* TRY_CAST(s AS INTEGER / BIGINT): an optionally signed decimal integer in range, else NULL. */
static int try_int(sv s, int64_t max, int64_t *out) {
    if (is_null(s)) return 0;
    s = strip_spaces(s);
    int neg = 0;
    if (s.n && (s.p[0] == '+' || s.p[0] == '-')) { neg = s.p[0] == '-'; s.p++; s.n--; }
    if (s.n == 0 || s.n > 19) return 0;
    uint64_t v = 0;
    for (Py_ssize_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return 0;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    if (v > (uint64_t)max + (uint64_t)neg) return 0;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 1;
}

/* TRY_CAST(s AS DOUBLE) for the decimal numbers SpamAssassin logs: [+-]d[.d][e[+-]d]. */
static int try_double(sv s, double *out) {
    if (is_null(s)) return 0;
    s = strip_spaces(s);
    if (s.n == 0 || s.n > 60) return 0;
    Py_ssize_t i = 0, digits = 0;
    if (s.p[i] == '+' || s.p[i] == '-') i++;
    while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9') { i++; digits++; }
    if (i < s.n && s.p[i] == '.') { i++; while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9') { i++; digits++; } }
    if (!digits) return 0;
    if (i < s.n && (s.p[i] == 'e' || s.p[i] == 'E')) {
        i++;
        if (i < s.n && (s.p[i] == '+' || s.p[i] == '-')) i++;
        Py_ssize_t e = 0;
        while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9') { i++; e++; }
        if (!e) return 0;
    }
    if (i != s.n) return 0;
    char tmp[64];
    memcpy(tmp, s.p, (size_t)s.n);
    tmp[s.n] = '\0';
    *out = strtod(tmp, NULL);
    return 1;
}

static int emit_session(Scanner *S, column *c, session_state *s) {
    sv prog = got(S, s->prog), daemon = split_neg(prog, '/', 1);
    sv server = got(S, s->server), auth = got(S, s->auth), name = nullif_empty(got(S, s->name));
    sv ended = got(S, s->ended);
    int64_t port = 0, sport = 0;
    int port_ok = try_int(nullif_empty(rtrim_set(got(S, s->port), ":")), INT32_MAX, &port);
    int sport_ok = try_int(nullif_empty(SPLIT(server, "]:", 2)), INT32_MAX, &sport);
    if (!is_null(name) && EQ(name, "unknown")) name = NONE;
    if (is_null(ended) && s->disconnects > 0) ended = mk("disconnect", 10);
    return (emit_i64(&c[0], s->id) < 0
        || col_str(&c[1], EQ(daemon, "postscreen") ? mk("postscreen", 10) : mk("smtp", 4)) < 0
        || col_i64(&c[2], s->first_ts, 1) < 0 || col_i64(&c[3], s->last_ts, 1) < 0
        || col_u8(&c[4], (uint8_t)!s->any_rfc) < 0 || col_str(&c[5], got(S, s->host)) < 0
        || col_str(&c[6], prog) < 0 || col_i64(&c[7], s->pid, s->pid_ok) < 0
        || col_str(&c[8], nullif_empty(got(S, s->ip))) < 0 || col_i64(&c[9], port, port_ok) < 0
        || col_str(&c[10], name) < 0 || col_str(&c[11], nullif_empty(got(S, s->helo))) < 0
        || col_str(&c[12], nullif_empty(SPLIT(SPLIT(server, "[", 2), "]", 1))) < 0
        || col_i64(&c[13], sport, sport_ok) < 0
        || col_u8(&c[14], (uint8_t)!SREF_IS_NULL(s->tls_info)) < 0
        || col_str(&c[15], nullif_empty(got(S, s->tls_info))) < 0
        || col_str(&c[16], nullif_empty(SPLIT(SPLIT(auth, "sasl_username=", 2), ",", 1))) < 0
        || col_str(&c[17], nullif_empty(SPLIT(auth, ",", 1))) < 0
        || emit_i64(&c[18], s->auth_failures) < 0 || col_str(&c[19], NONE) < 0
        || col_str(&c[20], ended) < 0
        || col_str(&c[21], EQ(daemon, "smtpd") ? nullif_empty(got(S, s->commands)) : NONE) < 0
        || emit_i64(&c[22], s->first_lineno) < 0 || emit_i64(&c[23], s->last_lineno) < 0
        || emit_i64(&c[24], s->n_lines) < 0) ? -1 : 0;
}

/* A transaction no connection owns (pickup, Postfix's own mail) is a session of its own. */
static int emit_orphan(Scanner *S, column *c, txn_state *t) {
    int local = t->picked_up;
    return (emit_i64(&c[0], t->id) < 0 || col_str(&c[1], local ? mk("local", 5) : mk("queue", 5)) < 0
        || col_i64(&c[2], t->start_ts, 1) < 0 || col_i64(&c[3], t->end_ts, 1) < 0
        || col_u8(&c[4], (uint8_t)!t->any_rfc) < 0 || col_str(&c[5], got(S, t->host)) < 0
        || col_str(&c[6], local ? mk("postfix/pickup", 14) : NONE) < 0 || col_i64(&c[7], 0, 0) < 0
        || col_str(&c[8], NONE) < 0 || col_i64(&c[9], 0, 0) < 0 || col_str(&c[10], NONE) < 0
        || col_str(&c[11], NONE) < 0 || col_str(&c[12], NONE) < 0 || col_i64(&c[13], 0, 0) < 0
        || col_u8(&c[14], 0) < 0 || col_str(&c[15], NONE) < 0 || col_str(&c[16], NONE) < 0
        || col_str(&c[17], NONE) < 0 || emit_i64(&c[18], 0) < 0
        || col_cat(&c[19], "uid=", local ? got(S, t->pickup_uid) : NONE) < 0
        || col_str(&c[20], NONE) < 0 || col_str(&c[21], NONE) < 0
        || emit_i64(&c[22], t->first_lineno) < 0 || emit_i64(&c[23], t->last_lineno) < 0
        || emit_i64(&c[24], t->n_lines) < 0) ? -1 : 0;
}

/* Sort keys: the index stores recipients and rejects by session, so that DuckDB skips the other
 * row groups on a look-up; sorting here spares DuckDB the sort. */
typedef struct { int64_t session_id, lineno, ref; } recip_key;   /* ref >= 0 delivery, < 0 reject */

static int cmp_recip_key(const void *a, const void *b) {
    const recip_key *x = a, *y = b;
    if (x->session_id != y->session_id) return x->session_id < y->session_id ? -1 : 1;
    return (x->lineno > y->lineno) - (x->lineno < y->lineno);
}

static void free_plan(Scanner *S) {
    free(S->owner); free(S->sess_rank); free(S->txn_rank); free(S->rank_ref);
    S->owner = S->sess_rank = S->txn_rank = S->rank_ref = NULL;
    S->ranks = 0;
}

/* Who owns each transaction, and every session's place in session-id order. */
static int plan_finish(Scanner *S) {
    Py_ssize_t ns = S->n_sessions, nt = S->n_txns;
    S->owner = malloc((size_t)(nt + 1) * 8);
    S->sess_rank = malloc((size_t)(ns + 1) * 8);
    S->txn_rank = malloc((size_t)(nt + 1) * 8);
    S->rank_ref = malloc((size_t)(ns + nt + 1) * 8);
    if (!S->owner || !S->sess_rank || !S->txn_rank || !S->rank_ref) { free_plan(S); return -1; }
    int64_t *owner = S->owner;
    for (Py_ssize_t j = 0; j < nt; j++)
        owner[j] = S->txns[j].conn_client >= 0 ? S->txns[j].conn_client : S->txns[j].conn_any;
    /* sessions in id order: connections and orphan transactions merged (both already sorted) */
    Py_ssize_t ranks = 0, i = 0, j = 0;
    for (;;) {
        while (j < nt && owner[j] >= 0) { j++; }
        if (i >= ns && j >= nt) break;
        if (j >= nt || (i < ns && S->sessions[i].id < S->txns[j].id)) {
            S->sess_rank[i] = ranks; S->rank_ref[ranks++] = i++;
        } else {
            S->txn_rank[j] = ranks; S->rank_ref[ranks++] = -1 - j; j++;
        }
    }
    for (j = 0; j < nt; j++) if (owner[j] >= 0) S->txn_rank[j] = S->sess_rank[owner[j]];
    S->ranks = ranks;
    return 0;
}

/* The session id a transaction belongs to: its owner's, or its own (an orphan is a session). */
static inline int64_t txn_session_id(const Scanner *S, Py_ssize_t j) {
    return S->owner[j] >= 0 ? S->sessions[S->owner[j]].id : S->txns[j].id;
}

static int reject_session_id(const Scanner *S, const reject_line *r, int64_t *id) {
    if (r->conn >= 0) { *id = S->sessions[r->conn].id; return 1; }
    if (r->txn >= 0) { *id = txn_session_id(S, r->txn); return 1; }
    *id = 0;
    return 0;
}

/* Each finished table has an order, made by its first finish_rows/finish_table: the sorted keys
 * (recipients, rejects), none (transactions), the session ranks (sessions) or both columns whole
 * (session_lines, by a counting sort). Rows are then built range by range, so that DuckDB can
 * store a table in chunks while the next chunk is built, in memory that is used again. The
 * orders only read the planned state, and each table writes its own. */
static int prepare_transactions(Scanner *S, table_order *o) {
    /* Transactions are made in the order of their first line, so they are in txn_id order
     * already (the second half's come after the first's, and the merge folds, never inserts):
     * the order the index keeps them in, like the other tables (their look-up tables by
     * Message-ID and queue id are sorted by DuckDB, see columnar_postfix.lookup_statements). */
    o->rows = S->n_txns;
    o->keys = NULL;
    return 0;
}

static int emit_transaction(Scanner *S, column *c, Py_ssize_t j) {
    txn_state *t = &S->txns[j];
    int64_t size = 0, nrcpt = 0;
    double score = 0, required = 0;
    int size_ok = try_int(nullif_empty(got(S, t->size)), INT64_MAX, &size);
    int nrcpt_ok = try_int(nullif_empty(got(S, t->nrcpt)), INT32_MAX, &nrcpt);
    int score_ok = try_double(nullif_empty(got(S, t->score)), &score);
    int required_ok = try_double(nullif_empty(got(S, t->required)), &required);
    int accepted = (!SREF_IS_NULL(t->message_id) || t->queued) && !t->rejected;
    sref sender = t->queued ? t->qmgr_from : t->picked_up ? t->pickup_from : t->reject_sender;
    return (emit_i64(&c[0], txn_session_id(S, j)) < 0 || emit_i64(&c[1], t->id) < 0
        || col_str(&c[2], got(S, t->qid)) < 0
        || col_str(&c[3], got(S, t->message_id)) < 0 || col_str(&c[4], got(S, sender)) < 0
        || col_i64(&c[5], size, size_ok) < 0 || col_u8(&c[6], (uint8_t)accepted) < 0
        || col_str(&c[7], got(S, t->reject_reason)) < 0 || col_str(&c[8], got(S, t->subject)) < 0
        || col_i64(&c[9], t->start_ts, 1) < 0 || col_i64(&c[10], t->end_ts, 1) < 0
        || col_f64(&c[11], score, score_ok) < 0 || col_f64(&c[12], required, required_ok) < 0
        || col_i64(&c[13], nrcpt, nrcpt_ok) < 0 || col_u8(&c[14], t->removed) < 0) ? -1 : 0;
}

/* by (session_id NULLS LAST, lineno), the order the index keeps; ref: the reject's index k
 * when it has a session, -1 - k when not */
static int cmp_reject_key(const void *a, const void *b) {
    const recip_key *x = a, *y = b;
    if ((x->ref < 0) != (y->ref < 0)) return x->ref < 0 ? 1 : -1;
    if (x->session_id != y->session_id) return x->session_id < y->session_id ? -1 : 1;
    return (x->lineno > y->lineno) - (x->lineno < y->lineno);
}

static int prepare_rejects(Scanner *S, table_order *o) {
    const reject_line *rl = (const reject_line *)S->rejects.p;
    Py_ssize_t nr = S->rejects.n / (Py_ssize_t)sizeof(reject_line);
    recip_key *keys = malloc((size_t)(nr + 1) * sizeof(recip_key));
    if (!keys) return -1;
    for (Py_ssize_t k = 0; k < nr; k++) {
        int64_t session_id;
        int has_session = reject_session_id(S, &rl[k], &session_id);
        keys[k] = (recip_key){session_id, rl[k].lineno, has_session ? k : -1 - k};
    }
    qsort(keys, (size_t)nr, sizeof(recip_key), cmp_reject_key);
    o->keys = keys;
    o->rows = nr;
    return 0;
}

static int emit_reject(Scanner *S, column *c, const recip_key *key) {
    int has_session = key->ref >= 0;
    const reject_line *r = &((const reject_line *)S->rejects.p)[has_session ? key->ref : -1 - key->ref];
    return (col_i64(&c[0], key->session_id, has_session) < 0 || col_i64(&c[1], r->ts, r->ts_ok) < 0
        || col_str(&c[2], got(S, r->client_ip)) < 0 || col_str(&c[3], got(S, r->client_name)) < 0
        || col_str(&c[4], got(S, r->stage)) < 0 || col_str(&c[5], got(S, r->action)) < 0
        || col_str(&c[6], got(S, r->qid)) < 0 || col_str(&c[7], got(S, r->code)) < 0
        || col_str(&c[8], got(S, r->dsn)) < 0 || col_str(&c[9], got(S, r->reason)) < 0
        || col_str(&c[10], got(S, r->sender)) < 0 || col_str(&c[11], got(S, r->recipient)) < 0
        || col_str(&c[12], got(S, r->helo)) < 0 || col_str(&c[13], got(S, r->proto)) < 0
        || emit_i64(&c[14], r->lineno) < 0) ? -1 : 0;
}

/* Deliveries, and the recipient of a message refused after it got a queue id (cleanup/milter
 * reject) as 'rejected'; by (session, line). */
static int prepare_recipients(Scanner *S, table_order *o) {
    const reject_line *rl = (const reject_line *)S->rejects.p;
    const delivery *dv = (const delivery *)S->deliveries.p;
    Py_ssize_t nd = S->deliveries.n / (Py_ssize_t)sizeof(delivery), nr = S->rejects.n / (Py_ssize_t)sizeof(reject_line);
    recip_key *rkeys = malloc((size_t)(nd + nr + 1) * sizeof(recip_key));
    Py_ssize_t nrk = 0;
    if (!rkeys) return -1;
    for (Py_ssize_t k = 0; k < nr; k++) {
        int64_t session_id;  /* the reject line's own session, as in the rejects table */
        if (rl[k].txn >= 0 && !SREF_IS_NULL(rl[k].recipient) && reject_session_id(S, &rl[k], &session_id))
            rkeys[nrk++] = (recip_key){session_id, rl[k].lineno, -1 - k};
    }
    for (Py_ssize_t k = 0; k < nd; k++)
        rkeys[nrk++] = (recip_key){txn_session_id(S, dv[k].txn), dv[k].lineno, k};
    qsort(rkeys, (size_t)nrk, sizeof(recip_key), cmp_recip_key);
    o->keys = rkeys;
    o->rows = nrk;
    return 0;
}

static int emit_recipient(Scanner *S, column *c, const recip_key *key) {
    if (key->ref >= 0) {
        const delivery *d = &((const delivery *)S->deliveries.p)[key->ref];
        return (emit_i64(&c[0], key->session_id) < 0 || emit_i64(&c[1], S->txns[d->txn].id) < 0
            || col_str(&c[2], got(S, d->qid)) < 0 || col_str(&c[3], got(S, d->address)) < 0
            || col_str(&c[4], got(S, d->orig)) < 0 || col_str(&c[5], got(S, d->status)) < 0
            || col_str(&c[6], got(S, d->relay)) < 0 || col_str(&c[7], got(S, d->dsn)) < 0
            || col_str(&c[8], got(S, d->detail)) < 0 || col_i64(&c[9], d->ts, 1) < 0
            || emit_i64(&c[10], d->lineno) < 0) ? -1 : 0;
    }
    const reject_line *r = &((const reject_line *)S->rejects.p)[-1 - key->ref];
    return (emit_i64(&c[0], key->session_id) < 0 || emit_i64(&c[1], S->txns[r->txn].id) < 0
        || col_str(&c[2], got(S, r->qid)) < 0 || col_str(&c[3], got(S, r->recipient)) < 0
        || col_str(&c[4], NONE) < 0 || col_str(&c[5], mk("rejected", 8)) < 0 || col_str(&c[6], NONE) < 0
        || col_str(&c[7], got(S, r->dsn)) < 0 || col_str(&c[8], got(S, r->reason)) < 0
        || col_i64(&c[9], r->ts, r->ts_ok) < 0 || emit_i64(&c[10], r->lineno) < 0) ? -1 : 0;
}

/* session_lines in (session_id, lineno) order by a counting sort over the session ranks:
 * lines were recorded in file order, so each session's lines come out ascending */
/* The transcript lines by rank (session id), then line number: a counting sort of line_refs,
 * which are freed then (finish_begin makes this order first). Ids are not stored per line, only
 * where each rank's lines begin (build_rows: the id of the rank). */
static int prepare_session_lines(Scanner *S, table_order *o) {
    Py_ssize_t nl = S->line_refs.n / (Py_ssize_t)sizeof(line_ref), ranks = S->ranks;
    int64_t *start = alloc_zeroed(((size_t)ranks + 2) * 8, 0);
    uint32_t *lines = malloc((size_t)(nl + 1) * sizeof *lines);
    if (!start || !lines) { free(start); free(lines); return -1; }
    const line_ref *lr = (const line_ref *)S->line_refs.p;
    int64_t *next = start + 1;   /* counts, then the next free position of each rank */
    for (Py_ssize_t k = 0; k < nl; k++)
        next[lr[k].ref >= 0 ? S->sess_rank[lr[k].ref] : S->txn_rank[-1 - lr[k].ref]]++;
    int64_t total = 0;
    for (Py_ssize_t r = 0; r < ranks; r++) { int64_t n = next[r]; next[r] = total; total += n; }
    /* next[r] == start[r + 1] is where rank r's lines begin; filling moves it to rank r's end,
     * which is rank r + 1's beginning: start[r + 1] afterwards */
    for (Py_ssize_t k = 0; k < nl; k++) {
        int64_t r = lr[k].ref >= 0 ? S->sess_rank[lr[k].ref] : S->txn_rank[-1 - lr[k].ref];
        lines[next[r]++] = lr[k].lineno;
    }
    start[0] = 0;   /* rank 0 begins at 0; start[r] for r >= 1 is rank r - 1's end */
    buf_free(&S->line_refs);
    o->lines = lines;
    o->rank_start = start;
    o->rows = nl;
    return 0;
}

/* The id of the session (or orphan transaction) at rank r. */
static inline int64_t rank_id(const Scanner *S, Py_ssize_t r) {
    int64_t ref = S->rank_ref[r];
    return ref >= 0 ? S->sessions[ref].id : S->txns[-1 - ref].id;
}

/* session_lines rows [start, stop): the id of each line's rank, and the line number. */
static int build_session_lines(Scanner *S, const table_order *o, column *c, Py_ssize_t start, Py_ssize_t stop) {
    Py_ssize_t n = stop - start;
    if (!c[0].skip && buf_reserve(&c[0].values, n * 8) < 0) return -1;
    if (!c[1].skip && buf_reserve(&c[1].values, n * 8) < 0) return -1;
    /* the rank of row start: the last r with rank_start[r] <= start */
    Py_ssize_t lo = 0, hi = S->ranks - 1;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo + 1) / 2;
        if (o->rank_start[mid] <= start) lo = mid; else hi = mid - 1;
    }
    int64_t *ids = (int64_t *)(c[0].values.p + c[0].values.n), *lines = (int64_t *)(c[1].values.p + c[1].values.n);
    Py_ssize_t r = lo;
    int64_t id = n ? rank_id(S, r) : 0;
    for (Py_ssize_t k = start; k < stop; k++) {
        while (k >= o->rank_start[r + 1]) id = rank_id(S, ++r);
        if (!c[0].skip) ids[k - start] = id;
        if (!c[1].skip) lines[k - start] = o->lines[k];
    }
    for (int i = 0; i < 2; i++) if (!c[i].skip) { c[i].values.n += n * 8; c[i].rows = n; }
    return 0;
}

static int prepare_order(Scanner *S, int which, table_order *o) {
    switch (which) {
    case T_SESSIONS: o->rows = S->ranks; return 0;
    case T_TRANSACTIONS: return prepare_transactions(S, o);
    case T_RECIPIENTS: return prepare_recipients(S, o);
    case T_REJECTS: return prepare_rejects(S, o);
    default: return prepare_session_lines(S, o);
    }
}

/* Rows [start, stop) of a prepared table into t. */
static int build_rows(Scanner *S, int which, const table_order *o, table *t, Py_ssize_t start, Py_ssize_t stop) {
    if (table_reserve(t, stop - start) < 0) return -1;
    column *c = t->cols;
    for (Py_ssize_t k = start; k < stop; k++) {
        int failed;
        switch (which) {
        case T_SESSIONS: {
            int64_t ref = S->rank_ref[k];
            failed = ref >= 0 ? emit_session(S, c, &S->sessions[ref]) : emit_orphan(S, c, &S->txns[-1 - ref]);
            break;
        }
        case T_TRANSACTIONS: failed = emit_transaction(S, c, k); break;
        case T_RECIPIENTS: failed = emit_recipient(S, c, &((const recip_key *)o->keys)[k]); break;
        case T_REJECTS: failed = emit_reject(S, c, &((const recip_key *)o->keys)[k]); break;
        default:
            return build_session_lines(S, o, c, start, stop);
        }
        if (failed) return -1;
    }
    return 0;
}

static void free_orders(Scanner *S) {
    for (int i = 0; i < N_TABLES; i++) {
        table_order *o = &S->order[i];
        free(o->keys); free(o->lines); free(o->rank_start);
        memset(o, 0, sizeof *o);
    }
}

static void table_init(table *t, int which) {
    memset(t, 0, sizeof *t);
    switch (which) {
    case T_SESSIONS: *t = (table){"sessions", (int)(sizeof SESS_NAMES / sizeof *SESS_NAMES), SESS_NAMES, SESS_KINDS, {{{0}}}}; break;
    case T_TRANSACTIONS: *t = (table){"transactions", (int)(sizeof TXN_NAMES / sizeof *TXN_NAMES), TXN_NAMES, TXN_KINDS, {{{0}}}}; break;
    case T_RECIPIENTS: *t = (table){"recipients", (int)(sizeof RECIP_NAMES / sizeof *RECIP_NAMES), RECIP_NAMES, RECIP_KINDS, {{{0}}}}; break;
    case T_REJECTS: *t = (table){"rejects", (int)(sizeof REJ_NAMES / sizeof *REJ_NAMES), REJ_NAMES, REJ_KINDS, {{{0}}}}; break;
    default: *t = (table){"session_lines", 2, SL_NAMES, "ll", {{{0}}}}; break;
    }
}

/* The whole table (finish()). */
static int build_table(Scanner *S, int which, table *t) {
    table_order *o = &S->order[which];
    if (!o->ready) {
        if (prepare_order(S, which, o) < 0) return -1;
        o->ready = 1;
    }
    return build_rows(S, which, o, t, 0, o->rows);
}

static void release_state(Scanner *S) {
    map_free(&S->conn);
    map_free(&S->txn);
    free(S->sessions); S->sessions = NULL; S->n_sessions = S->cap_sessions = 0;
    free(S->txns); S->txns = NULL; S->n_txns = S->cap_txns = 0;
    buf_free(&S->arena); buf_free(&S->arena2);
    buf_free(&S->line_refs); buf_free(&S->deliveries); buf_free(&S->rejects);
    free_plan(S);
    free_orders(S);
}

static PyObject *counts_dict(Scanner *S) {
    PyObject *first_year = S->first_year ? PyLong_FromLong(S->first_year) : (Py_INCREF(Py_None), Py_None);
    if (!first_year) return NULL;
    return Py_BuildValue("{s:L,s:L,s:L,s:L,s:N}", "lines", (long long)S->lines,
                         "unparsed", (long long)S->unparsed, "other", (long long)S->other,
                         "understood", (long long)S->understood, "first_year", first_year);
}

static PyObject *Scanner_finish_begin(Scanner *S, PyObject *Py_UNUSED(ignored)) {
    if (S->phase != SCANNING) {
        PyErr_SetString(PyExc_RuntimeError, "finish_begin() was already called on this Scanner");
        return NULL;
    }
    int failed;
    table_order *sl = &S->order[T_SESSION_LINES];
    Py_BEGIN_ALLOW_THREADS
    failed = plan_finish(S);
    /* session_lines first: its order replaces the line refs, which go (half their memory) */
    if (!failed) failed = prepare_session_lines(S, sl);
    /* the maps only find open connections and messages while lines come: 64 MiB for the 1 GiB
     * bench log, given back now for the tables' memory to use (fresh pages are dear, see drop_pages) */
    map_free(&S->conn);
    map_free(&S->txn);
    Py_END_ALLOW_THREADS
    if (failed) return PyErr_NoMemory();
    sl->ready = 1;
    S->phase = FINISHING;
    return counts_dict(S);
}

/* Whether names (a collection of str, or None: every name) holds name; -1 with an error set. */
static int has_name(PyObject *names, const char *name) {
    if (names == Py_None) return 1;
    PyObject *str = PyUnicode_FromString(name);
    int in = str ? PySequence_Contains(names, str) : -1;
    Py_XDECREF(str);
    return in;
}

/* The index of the finished table called name (TABLE_NAMES), or -1. */
static int table_index(const char *name) {
    for (int i = 0; i < N_TABLES; i++) if (!strcmp(name, TABLE_NAMES[i])) return i;
    return -1;
}

/* The table named, its order made (the GIL released while it is made); NULL with an error set. */
static table_order *table_ready(Scanner *S, const char *name, int *which_out) {
    int which = table_index(name);
    if (which < 0) { PyErr_Format(PyExc_ValueError, "no such table: %s", name); return NULL; }
    if (S->phase != FINISHING) {
        PyErr_SetString(PyExc_RuntimeError, "finish_rows()/finish_table() need finish_begin() and no finish_end()");
        return NULL;
    }
    table_order *o = &S->order[which];
    if (o->busy) { PyErr_Format(PyExc_RuntimeError, "%s is being built by another thread", name); return NULL; }
    if (o->done) { PyErr_Format(PyExc_RuntimeError, "%s was declared done (finish_done)", name); return NULL; }
    if (!o->ready) {
        int failed;
        o->busy = 1;
        S->building++;   /* finish_end refuses while a call runs */
        Py_BEGIN_ALLOW_THREADS
        failed = prepare_order(S, which, o);
        Py_END_ALLOW_THREADS
        S->building--;
        o->busy = 0;
        if (failed) { PyErr_NoMemory(); return NULL; }
        o->ready = 1;
    }
    *which_out = which;
    return o;
}

static PyObject *Scanner_finish_rows(Scanner *S, PyObject *args) {
    const char *name;
    int which;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    table_order *o = table_ready(S, name, &which);
    return o ? PyLong_FromSsize_t(o->rows) : NULL;
}

static PyObject *Scanner_finish_table(Scanner *S, PyObject *args) {
    const char *name;
    PyObject *wanted = Py_None;
    Py_ssize_t start = 0, stop = PY_SSIZE_T_MAX;
    int which;
    if (!PyArg_ParseTuple(args, "s|Onn", &name, &wanted, &start, &stop)) return NULL;
    table_order *o = table_ready(S, name, &which);
    if (!o) return NULL;
    for (size_t k = 0; k < sizeof DROPPABLE / sizeof *DROPPABLE; k++) {   /* its text was not kept */
        if (DROPPABLE[k].table != which || !(S->drop & DROPPABLE[k].bit)) continue;
        int in = has_name(wanted, DROPPABLE[k].column);
        if (in < 0) return NULL;
        if (in) return PyErr_Format(PyExc_ValueError, "%s.%s was not kept: the Scanner was made without it",
                                    name, DROPPABLE[k].column);
    }
    if (start < 0) start = 0;
    if (stop > o->rows) stop = o->rows;
    if (stop < start) stop = start;
    table t;
    table_init(&t, which);
    if (wanted != Py_None) {   /* the columns to build; the others are left out */
        for (int i = 0; i < t.ncols; i++) {
            int in = has_name(wanted, t.names[i]);
            if (in < 0) return NULL;
            t.cols[i].skip = !in;
        }
    }
    int failed;
    o->busy = 1;
    S->building++;
    Py_BEGIN_ALLOW_THREADS
    failed = build_rows(S, which, o, &t, start, stop);
    Py_END_ALLOW_THREADS
    S->building--;
    o->busy = 0;
    PyObject *result = failed ? NULL : table_dict(&t);
    table_free(&t);
    if (!result && !PyErr_Occurred()) PyErr_NoMemory();
    return result;
}

/* finish_done(name): the table is stored; its order goes, and what only the tables declared done
 * read (the deliveries: recipients; the reject lines: recipients and rejects), so that their
 * memory serves what comes next rather than fresh pages (see drop_pages). */
static PyObject *Scanner_finish_done(Scanner *S, PyObject *args) {
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    int which = table_index(name);
    if (which < 0) return PyErr_Format(PyExc_ValueError, "no such table: %s", name);
    if (S->phase != FINISHING) {
        PyErr_SetString(PyExc_RuntimeError, "finish_done() needs finish_begin() and no finish_end()");
        return NULL;
    }
    table_order *o = &S->order[which];
    if (o->busy) return PyErr_Format(PyExc_RuntimeError, "%s is being built by another thread", name);
    free(o->keys); free(o->lines); free(o->rank_start);
    o->keys = NULL; o->lines = NULL; o->rank_start = NULL;
    o->ready = 0;
    o->done = 1;
    if (S->order[T_RECIPIENTS].done) {
        buf_free(&S->deliveries);
        if (S->order[T_REJECTS].done) buf_free(&S->rejects);
    }
    Py_RETURN_NONE;
}

static PyObject *Scanner_finish_end(Scanner *S, PyObject *Py_UNUSED(ignored)) {
    if (S->building) {
        PyErr_SetString(PyExc_RuntimeError, "finish_end() while finish_table() runs");
        return NULL;
    }
    if (S->phase == FINISHED) Py_RETURN_NONE;
    Py_BEGIN_ALLOW_THREADS
    release_state(S);
    Py_END_ALLOW_THREADS
    S->phase = FINISHED;
    Py_RETURN_NONE;
}

static PyObject *Scanner_finish(Scanner *S, PyObject *Py_UNUSED(ignored)) {
    if (S->phase != SCANNING) {
        PyErr_SetString(PyExc_RuntimeError, "finish() was already called on this Scanner");
        return NULL;
    }
    if (S->drop) {
        PyErr_SetString(PyExc_ValueError, "finish() builds every column: this Scanner was made with fewer "
                        "(use finish_table with those columns)");
        return NULL;
    }
    table ts[N_TABLES];
    for (int i = 0; i < N_TABLES; i++) table_init(&ts[i], i);
    PyObject *result = NULL;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = plan_finish(S);
    for (int i = 0; i < N_TABLES && !failed; i++) failed = build_table(S, i, &ts[i]);
    release_state(S);  /* the rows are built: free the state before the caller stores them */
    Py_END_ALLOW_THREADS
    S->phase = FINISHED;
    if (!failed) {
        table *tp[N_TABLES];
        for (int i = 0; i < N_TABLES; i++) tp[i] = &ts[i];
        PyObject *tables = tables_dict(tp, N_TABLES), *counts = tables ? counts_dict(S) : NULL;
        result = counts ? Py_BuildValue("(NN)", tables, counts) : NULL;
        if (!result) { Py_XDECREF(tables); Py_XDECREF(counts); }
    }
    for (int i = 0; i < N_TABLES; i++) table_free(&ts[i]);
    if (!result && !PyErr_Occurred()) PyErr_NoMemory();
    return result;
}

/* Whether columns (a mapping table -> names, or None: all) wants table's column; -1 on error. */
static int wants(PyObject *columns, int table, const char *column) {
    if (columns == Py_None) return 1;
    PyObject *names = PyMapping_GetItemString(columns, TABLE_NAMES[table]);
    if (!names) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError)) return -1;
        PyErr_Clear();
        return 1;   /* a table not named keeps all of its columns */
    }
    int in = has_name(names, column);
    Py_DECREF(names);
    return in;
}

static int Scanner_init(Scanner *S, PyObject *args, PyObject *kw) {
    static char *names[] = {"base", "first_year", "anchor_year", "anchor_month", "transcripts", "columns",
                            "size_hint", NULL};
    long long base = 0;
    int first_year = 0, anchor_year = 2000, anchor_month = 12, transcripts = 1;
    PyObject *columns = Py_None;
    Py_ssize_t size_hint = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "L|iiipOn", names, &base, &first_year, &anchor_year, &anchor_month,
                                     &transcripts, &columns, &size_hint))
        return -1;
    /* size_hint: the bytes this scanner will read. The maps start big enough for the keys such
     * a log has (1 GiB bench log: a message every 1.4 KiB; connection keys fewer): no re-hash. */
    if (size_hint > 0 && (map_reserve(&S->txn, size_hint / 1400) < 0 || map_reserve(&S->conn, size_hint / 1400) < 0)) {
        PyErr_NoMemory();
        return -1;
    }
    S->drop = columns == Py_None ? 0 : D_ALL;
    for (size_t k = 0; columns != Py_None && k < sizeof DROPPABLE / sizeof *DROPPABLE; k++) {
        int in = wants(columns, DROPPABLE[k].table, DROPPABLE[k].column);
        if (in < 0) return -1;
        if (in) S->drop &= ~DROPPABLE[k].bit;
    }
    S->transcripts = transcripts;
    S->base = base;
    S->next_lineno = 1;
    S->first_year = first_year;
    S->anchor_year = anchor_year;
    S->anchor_month = anchor_month;
    S->auth = (table){"auth", 8, AUTH_NAMES, "lltsssus", {{{0}}}};
    return 0;
}

static void Scanner_dealloc(Scanner *S) {
    release_state(S);   /* also the tables' orders of a scanner dropped between finish_begin and finish_end */
    table_free(&S->auth);
    Py_TYPE(S)->tp_free((PyObject *)S);
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_VARARGS, scan_doc},
    {"finish", (PyCFunction)Scanner_finish, METH_NOARGS,
     "finish() -> (tables, counts): sessions, transactions, recipients, rejects and session_lines rows\n"
     "(as scan() gives its tables) and the line counts. Call it once, after the last slice."},
    {"skip", (PyCFunction)Scanner_skip, METH_VARARGS, skip_doc},
    {"merge", (PyCFunction)Scanner_merge, METH_VARARGS, merge_doc},
    {"finish_begin", (PyCFunction)Scanner_finish_begin, METH_NOARGS,
     "finish_begin() -> counts: the line counts; plans the tables for finish_table(). Instead of\n"
     "finish(), so that DuckDB can store one table while the next is built."},
    {"finish_rows", (PyCFunction)Scanner_finish_rows, METH_VARARGS,
     "finish_rows(name) -> the number of rows of one finished table (sessions,\n"
     "transactions, recipients, rejects or session_lines); puts them in order, once."},
    {"finish_table", (PyCFunction)Scanner_finish_table, METH_VARARGS,
     "finish_table(name, columns=None, start=0, stop=all) -> columns of rows [start, stop) of one\n"
     "finished table, between finish_begin() and finish_end(); a table may be built in any number\n"
     "of ranges, by one thread at a time. columns: the names to build (the others are left out),\n"
     "or None for all."},
    {"finish_done", (PyCFunction)Scanner_finish_done, METH_VARARGS,
     "finish_done(name): one finished table is stored; frees what only it (and the tables done\n"
     "before) needs. finish_table(name) is refused afterwards."},
    {"finish_end", (PyCFunction)Scanner_finish_end, METH_NOARGS,
     "finish_end(): frees the scanner's state (call it when every wanted table is built)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mailwarden.logs._pfscan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Scanner(base, first_year=0, anchor_year=2000, anchor_month=12, transcripts=True, columns=None):\n"
              "Postfix syslog lines -> index rows, fed in slices; without transcripts, session_lines is empty.\n"
              "columns: {table: names} of the columns that will be built (a table not named: all of them);\n"
              "the strings only other columns need are not kept, and finish_table refuses those columns.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

/* bytes.count(b"\n") walks byte by byte (0.56 s of CPU for the 1 GiB bench log, in the line
 * store's blocks); memchr jumps from line end to line end. */
static PyObject *count_lines(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer view;
    Py_ssize_t start = 0, stop = PY_SSIZE_T_MAX;
    if (!PyArg_ParseTuple(args, "y*|nn", &view, &start, &stop)) return NULL;
    if (start < 0) start = 0;
    if (stop > view.len) stop = view.len;
    Py_ssize_t n = 0;
    if (start < stop) {
        const char *p = (const char *)view.buf + start, *end = (const char *)view.buf + stop;
        Py_BEGIN_ALLOW_THREADS
#ifdef __SSE2__
        /* per byte lane, 0 - (-1) for each '\n' (at most 255 blocks before a lane could wrap),
         * summed by _mm_sad_epu8: no popcount, which x86-64's baseline lacks (gcc's software
         * one made this 5x slower than a memchr per line) */
        const __m128i nlv = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();
        while (end - p >= 16) {
            __m128i acc = zero;
            for (int k = 0; k < 255 && end - p >= 16; k++, p += 16)
                acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)p), nlv));
            __m128i sums = _mm_sad_epu8(acc, zero);
            n += _mm_cvtsi128_si32(sums) + _mm_cvtsi128_si32(_mm_srli_si128(sums, 8));
        }
        for (; p < end; p++) n += *p == '\n';
#else
        while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) { n++; p++; }
#endif
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(n);
}

static PyMethodDef module_methods[] = {
    {"count_lines", count_lines, METH_VARARGS,
     "count_lines(data, start=0, stop=len) -> the number of '\\n' in data[start:stop]."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pfscan",
    "The per-line work of the Postfix index loader, compiled (see columnar_postfix.py).", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__pfscan(void) {
    if (PyType_Ready(&ScannerType) < 0 || PyType_Ready(&OwnedBufferType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "SAW_CR", SAW_CR) < 0 || PyModule_AddIntConstant(m, "SAW_NOT_ASCII", SAW_NOT_ASCII) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
