/* The internet checksum's word sum (RFC 1071) for the C accelerators: the decoder's checks (decode/_fastdecode.c) and
 * the detector's quoted headers (detect/_fastflows.c). decode/checksum.py checksum_ok_py is the Python reference;
 * tests/unit/test_checksum.py holds them to dpkt's in_cksum. */
#ifndef ICMPSENSOR_CHECKSUM_H
#define ICMPSENSOR_CHECKSUM_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

static inline unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }

/* A number congruent modulo 0xFFFF to the sum of the big-endian 16-bit words of p[0:n] (a last
 * odd byte padded with a zero byte), and 0 only when every byte is 0: the sum of its big-endian
 * 32-bit words (2^16 = 1 modulo 0xFFFF), read eight bytes at a time (both halves of a big-endian
 * 64-bit word: 2^32 = 1 modulo 0xFFFF too), then four. */
static inline uint64_t word_sum(const unsigned char *p, Py_ssize_t n)
{
    uint64_t sum = 0;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, p + i, 8);
        word = __builtin_bswap64(word);
        sum += (word >> 32) + (word & 0xFFFFFFFFu);
    }
    for (; i + 4 <= n; i += 4) {
        uint32_t word;
        memcpy(&word, p + i, 4);
        sum += __builtin_bswap32(word);
    }
    for (; i + 1 < n; i += 2)
        sum += be16(p + i);
    if (i < n)
        sum += (uint64_t)p[i] << 8;
    return sum;
}

/* Whether p[0:n], its checksum field included, verifies: its words' one's-complement sum is 0xFFFF (-0); all-zero
 * words sum to +0, which does not verify. */
static inline int checksum_verifies(const unsigned char *p, Py_ssize_t n)
{
    uint64_t sum = word_sum(p, n); /* cannot overflow below 2^34 bytes: far beyond any buffer a capture gives */
    return sum != 0 && sum % 0xFFFF == 0;
}

#endif
