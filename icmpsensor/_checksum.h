/* The internet checksum's word sum (RFC 1071) for the C accelerators: the decoder's checks (decode/_fastdecode.c) and
 * the detector's quoted headers (detect/_fastflows.c). decode/checksum.py checksum_ok_py is the Python reference;
 * tests/unit/test_checksum.py holds them to dpkt's in_cksum. */
#ifndef ICMPSENSOR_CHECKSUM_H
#define ICMPSENSOR_CHECKSUM_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

static inline unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }

/* A number congruent modulo 0xFFFF to the sum of the big-endian 16-bit words of p[0:n] (a last odd byte padded with
 * a zero byte), and 0 only when every byte is 0. Summed as the host's own 64-bit words, sixteen bytes a step into two
 * sums whose carries are counted (2^16, 2^32 and 2^64 are all 1 modulo 0xFFFF): half the instructions of a byte swap
 * a word (a jumbo datagram's checksum was a tenth of its cost). On a little-endian host those words' sum is the
 * big-endian one with its two bytes swapped (RFC 1071 2(B), byte order independence): it is folded to 16 bits with
 * its carries (never to 0 but from 0: 0xFFFF stands for a multiple of 0xFFFF), then swapped back. */
static inline uint64_t word_sum(const unsigned char *p, Py_ssize_t n)
{
    uint64_t sum = 0, other = 0, carries = 0, tail = 0;
    Py_ssize_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint64_t words[2];
        memcpy(words, p + i, 16);
        carries += __builtin_add_overflow(sum, words[0], &sum);
        carries += __builtin_add_overflow(other, words[1], &other);
    }
    carries += __builtin_add_overflow(sum, other, &sum);
    if (i + 8 <= n) {
        uint64_t word;
        memcpy(&word, p + i, 8);
        carries += __builtin_add_overflow(sum, word, &sum);
        i += 8;
    }
    if (i + 4 <= n) {
        uint32_t word;
        memcpy(&word, p + i, 4);
        tail += word;
        i += 4;
    }
#if PY_LITTLE_ENDIAN
    if (i + 2 <= n) {
        tail += (uint64_t)p[i] | (uint64_t)p[i + 1] << 8;
        i += 2;
    }
    if (i < n)
        tail += p[i];
#else
    if (i + 2 <= n) {
        tail += be16(p + i);
        i += 2;
    }
    if (i < n)
        tail += (uint64_t)p[i] << 8;
#endif
    carries += __builtin_add_overflow(sum, tail, &sum);
    if (sum == 0 && carries == 0)
        return 0;
    sum = (sum & 0xFFFFFFFFu) + (sum >> 32) + carries;
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
#if PY_LITTLE_ENDIAN
    return (sum >> 8) | (sum & 0xFF) << 8;
#else
    return sum;
#endif
}

/* Whether p[0:n], its checksum field included, verifies: its words' one's-complement sum is 0xFFFF (-0); all-zero
 * words sum to +0, which does not verify. */
static inline int checksum_verifies(const unsigned char *p, Py_ssize_t n)
{
    uint64_t sum = word_sum(p, n); /* cannot overflow below 2^34 bytes: far beyond any buffer a capture gives */
    return sum != 0 && sum % 0xFFFF == 0;
}

#endif
