/* The decoder's batch fast path in C: a libpcap batch's common frames to IcmpPacket records.
 *
 * It takes the frames the struct fast path of decode/fast.py Decoder takes (an IPv4 header without
 * options and not a fragment, or an IPv6 header with no extension header, then a whole ICMP message
 * of 8 bytes or more, checksums right), and also IPv4 headers with options and IPv6 hop-by-hop and
 * destination options headers before the message (their options as decode/ip.py sender_options
 * gives them: a sender that adds an option must not make every packet the slow path's), behind
 * Ethernet (with any VLAN tags), Linux cooked (SLL, SLL2) or raw IP, and builds the records the
 * Python decoder builds. The fragments decode/fast.py reads without dpkt (IPv4 behind a 20-byte header,
 * IPv6 with the fragment header behind the fixed one) it hands to the reassembler itself, in frame order
 * (hand_fragment; docs/design.md "Fragments in C"). Every other frame - anything malformed, truncated,
 * other fragments, with a routing, authentication or fragment header, a bad checksum, not IP - is left to
 * the Python decoder: decode_batch returns its position, and decode/fast.py decodes it there. So this file
 * never decides that a frame is bad; it only recognises good ones, and the frames that the Python decoder
 * would skip as not IP or not ICMP (a replayed SPAN capture's other traffic), counted as it counts them.
 *
 * Every read is checked against the frame's captured length and the batch buffer first.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#include "../_checksum.h"
#include "../_slots.h"

/* What frame() and the layers under it return beside 1 (a record), 0 (left to Python) and -1 (an error): a frame
 * the Python decoder skips, by the index of its reason in decode/fast.py C_SKIPPED, plus SKIPPED. */
enum { SKIPPED = 2, SKIP_NOT_IP = SKIPPED + 0, SKIP_NOT_ICMP = SKIPPED + 1, N_SKIPS = 2 };
/* frame()'s answer for a fragment the reassembler is handed from here (*fragment: its IP header): IPv4 behind a
 * 20-byte header, IPv6 with the fragment header right behind the fixed one. */
enum { FRAGMENT4 = 16, FRAGMENT6 = 17 };

enum link_kind { LINK_ETHERNET = 0, LINK_SLL = 1, LINK_SLL2 = 2, LINK_RAW = 3, LINK_RAW4 = 4, LINK_RAW6 = 5 };

#define N_FIELDS 12
static const char *const FIELD_NAMES[N_FIELDS] = {
    "ts", "src", "dst", "ipv6", "icmp_type", "icmp_code", "ident", "seq", "payload", "wire_len", "options",
    "frames",
};
/* b"": the options of a frame without any */
static PyObject *no_options = NULL;
/* Headers walked towards an ICMPv6 message, that one included (decode/ip.py MAX_EXT_HEADERS, set by bind()). */
static int max_ext_headers = 1150;
static int max_option_items = 64; /* decode/ip.py MAX_OPTION_ITEMS, given by bind() */
/* decode/linktypes.py MAX_MPLS_LABELS and MAX_ENCAPSULATIONS, given by bind() */
static int max_mpls_labels = 8;
static int max_encapsulations = 75;

/* The encapsulations opened (decode/linktypes.py; decode/encap.py, the reference, has the GRE, ERSPAN, VXLAN and Geneve
 * header layouts): protocol numbers, ethertypes, PPP protocols, UDP ports, GRE's flags. */
enum { PROTO_IPIP = 4, PROTO_UDP = 17, PROTO_IPV6 = 41, PROTO_GRE = 47 };
enum { ETHERTYPE_MPLS_UNICAST = 0x8847, ETHERTYPE_MPLS_MULTICAST = 0x8848, ETHERTYPE_PPPOE_SESSION = 0x8864,
       ETHERTYPE_TEB = 0x6558, ETHERTYPE_ERSPAN2 = 0x88BE, ETHERTYPE_ERSPAN3 = 0x22EB };
enum { PPP_IPV4 = 0x0021, PPP_IPV6 = 0x0057, UDP_VXLAN = 4789, UDP_GENEVE = 6081 };
enum { GRE_C = 0x8000, GRE_R = 0x4000, GRE_K = 0x2000, GRE_S = 0x1000, GRE_VERSION = 0x0007 };

/* The record type (packet.IcmpPacket) and where its slots live, set by bind(). */
static PyTypeObject *packet_type = NULL;
static Py_ssize_t slot_offset[N_FIELDS];

/* The VLAN tag protocol identifiers, set by bind() from decode/linktypes.py VLAN_TPIDS (the one copy). */
#define MAX_TPIDS 8
static unsigned vlan_tpids[MAX_TPIDS];
static int n_vlan_tpids = 0;

static inline int is_vlan_tpid(unsigned ethertype)
{
    for (int i = 0; i < n_vlan_tpids; i++)
        if (ethertype == vlan_tpids[i])
            return 1;
    return 0;
}

/* A new record with the slots set (references stolen), or NULL with an exception set. */
static PyObject *new_packet(PyObject *values[N_FIELDS])
{
    PyObject *obj = NULL;
    for (int i = 0; i < N_FIELDS; i++)
        if (values[i] == NULL)
            goto fail;
    obj = packet_type->tp_alloc(packet_type, 0);
    if (obj == NULL)
        goto fail;
    for (int i = 0; i < N_FIELDS; i++)
        SLOT(obj, slot_offset[i]) = values[i];
    return obj;
fail:
    for (int i = 0; i < N_FIELDS; i++)
        Py_XDECREF(values[i]);
    return NULL;
}

/* Records share the objects of the values that recur: the addresses of the hosts talking now and the 16-bit
 * fields (identifier, sequence number, length). A fresh object per packet costs its allocation and its free, and
 * a fresh address its hash (siphash) at each dict the detector keys by it, and a byte comparison at each lookup
 * that an identical object skips. Values are immutable: sharing them is invisible but for `is`. Bounded: one
 * int per 16-bit value at most, and a direct-mapped table of addresses (a new address takes its slot's place). */
#define SHARED_ADDRESS_BITS 12 /* 4,096 addresses a family */
static PyObject *u16_ints[65536];
static PyObject *shared_address[2][1 << SHARED_ADDRESS_BITS];

static PyObject *u16_int(long value)
{
    if (value < 0 || value > 65535)
        return PyLong_FromLong(value);
    PyObject *obj = u16_ints[value];
    if (obj == NULL && (obj = u16_ints[value] = PyLong_FromLong(value)) == NULL)
        return NULL;
    return Py_NewRef(obj);
}

static PyObject *address(const unsigned char *addr, Py_ssize_t len)
{
    uint32_t word;
    memcpy(&word, addr + len - 4, 4);
    uint32_t mix = word;
    if (len == 16) {
        uint32_t other[3];
        memcpy(other, addr, 12);
        mix ^= other[0] * 0x9E3779B1u ^ other[1] * 0x85EBCA77u ^ other[2] * 0xC2B2AE3Du;
    }
    PyObject **slot = &shared_address[len == 16][(mix * 0x9E3779B1u) >> (32 - SHARED_ADDRESS_BITS)];
    PyObject *obj = *slot;
    if (obj != NULL && memcmp(PyBytes_AS_STRING(obj), addr, (size_t)len) == 0)
        return Py_NewRef(obj);
    obj = PyBytes_FromStringAndSize((const char *)addr, len);
    if (obj != NULL)
        Py_XSETREF(*slot, Py_NewRef(obj));
    return obj;
}

/* Add a batch's counts to a list of n ints (type_counts, skip_counts). 0, or -1 with an exception set. */
static int add_counts(PyObject *counts, const Py_ssize_t *batch_counts, Py_ssize_t n)
{
    for (Py_ssize_t index = 0; index < n; index++) {
        if (!batch_counts[index])
            continue;
        PyObject *old = PyList_GET_ITEM(counts, index);
        Py_ssize_t value = PyLong_AsSsize_t(old);
        if (value == -1 && PyErr_Occurred())
            return -1;
        PyObject *new = PyLong_FromSsize_t(value + batch_counts[index]);
        if (new == NULL)
            return -1;
        PyList_SET_ITEM(counts, index, new);
        Py_DECREF(old);
    }
    return 0;
}

/* The record of an ICMP message msg[0:size] (size >= 8) between the addresses src and dst (4 or 16
 * bytes), with `options` (a reference it takes); 1 with *out set, or -1 with an exception set. */
static int message(const unsigned char *src, const unsigned char *dst, int ipv6, const unsigned char *msg,
                   Py_ssize_t size, double ts, Py_ssize_t wire_len, PyObject *options, Py_ssize_t *counts,
                   PyObject **out)
{
    unsigned type = msg[0];
    int echo = ipv6 ? type == 128 || type == 129 : type == 8 || type == 0;
    Py_ssize_t start = echo ? 8 : 4;  /* an echo's payload follows its id and seq */
    Py_ssize_t address_len = ipv6 ? 16 : 4;
    PyObject *values[N_FIELDS] = {
        PyFloat_FromDouble(ts),
        address(src, address_len),
        address(dst, address_len),
        Py_NewRef(ipv6 ? Py_True : Py_False),
        PyLong_FromLong(type),
        PyLong_FromLong(msg[1]),
        u16_int(echo ? (long)be16(msg + 4) : -1),
        u16_int(echo ? (long)be16(msg + 6) : -1),
        PyBytes_FromStringAndSize((const char *)msg + start, size - start),
        u16_int((long)wire_len),
        options,  /* a new reference (NULL: an error, reported as the others are) */
        Py_NewRef(Py_None),  /* frames: a whole frame, found at its own place in the batch */
    };
    *out = new_packet(values);
    if (*out == NULL)
        return -1;
    counts[(ipv6 ? 256 : 0) + type]++;
    return 1;
}

static int all_zero(const unsigned char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Append to out[*n] the sender's options in area[0:end], an IPv4 header's option area (ipv6 = 0) or an IPv6
 * hop-by-hop or destination options header's, without padding: decode/ip.py sender_options, the reference
 * (the same steps). out has room for end more bytes. */
static void sender_options(const unsigned char *area, Py_ssize_t end, int ipv6, unsigned char *out, Py_ssize_t *n)
{
    Py_ssize_t pos = 0;
    for (int items = 0; pos < end; items++) {
        unsigned kind = area[pos];
        if (items == max_option_items) {  /* past decode/ip.py MAX_OPTION_ITEMS items: the rest kept whole */
            memcpy(out + *n, area + pos, end - pos);
            *n += end - pos;
            return;
        }
        if (kind == (ipv6 ? 0u : 1u)) {  /* a run of Pad1 or NOP: one item */
            while (pos < end && area[pos] == kind)
                pos++;
            continue;
        }
        Py_ssize_t size = pos + 1 < end ? (Py_ssize_t)area[pos + 1] + (ipv6 ? 2 : 0) : 0;
        if ((!ipv6 && kind == 0) || pos + 1 >= end || size < 2 || pos + size > end) {
            /* an EOL followed by anything but zeros, or a tail that does not parse: kept whole */
            if (ipv6 || kind != 0 || !all_zero(area + pos + 1, end - pos - 1)) {
                memcpy(out + *n, area + pos, end - pos);
                *n += end - pos;
            }
            return;
        }
        if (!(ipv6 && kind == 1 && all_zero(area + pos + 2, size - 2))) {  /* PadN of zeros: padding */
            memcpy(out + *n, area + pos, size);
            *n += size;
        }
        pos += size;
    }
}

/* The options gathered in out[0:n], as the record's bytes (the shared b"" when there are none). */
static PyObject *options_bytes(const unsigned char *out, Py_ssize_t n)
{
    return n ? PyBytes_FromStringAndSize((const char *)out, n) : Py_NewRef(no_options);
}

/* The IPv4 packet at f[0:len]: 1 and *out set if it is on the fast path, 0 if not, -1 on error. */
static int decap(unsigned proto, const unsigned char *p, Py_ssize_t n, double ts, Py_ssize_t wire_len, int verify,
                 Py_ssize_t *counts, PyObject **out, const unsigned char **fragment, int depth);

/* Whether the frame being decoded had a tunnel opened (decode/stats.py decapsulated; decode_batch resets it). */
static int frame_tunnelled = 0;

/* decode/encap.py is_tunnel: whether an IP payload p[pos:end] of protocol proto is a tunnel opened (IP-in-IP, GRE;
 * UDP to VXLAN's or Geneve's port). */
static int is_tunnel(unsigned proto, const unsigned char *p, Py_ssize_t pos, Py_ssize_t end)
{
    if (proto == PROTO_UDP) {
        unsigned port = end - pos >= 4 ? be16(p + pos + 2) : 0;
        return port == UDP_VXLAN || port == UDP_GENEVE;
    }
    return proto == PROTO_IPIP || proto == PROTO_IPV6 || proto == PROTO_GRE;
}

/* An IPv4 packet f[0:len] whose protocol is a tunnel's, not a later fragment: decode/ip.py _tunnel4's checks (any
 * that fails, and a first fragment, left to Python), then its payload opened; as ip4() returns. */
static int tunnel4(const unsigned char *f, Py_ssize_t len, double ts, Py_ssize_t wire_len, int verify,
                   Py_ssize_t *counts, PyObject **out, const unsigned char **fragment, int depth)
{
    Py_ssize_t header = (Py_ssize_t)(f[0] & 15) * 4;
    Py_ssize_t total = be16(f + 2);
    if (header > len || total < header || total > len || (verify && word_sum(f, header) % 0xFFFF)
        || (be16(f + 6) & 0x2000))
        return 0;
    return decap(f[9], f + header, total - header, ts, wire_len, verify, counts, out, fragment, depth);
}

static int ip4(const unsigned char *f, Py_ssize_t len, double ts, Py_ssize_t wire_len, int verify,
               Py_ssize_t *counts, PyObject **out, const unsigned char **fragment, int depth)
{
    if (len >= 20 && f[0] >> 4 == 4 && (f[0] & 15) >= 5 && f[9] != 1) {
        /* decode/ip.py _ip4: a header dpkt reads, then the protocol, before anything else; a tunnel's opened (a
         * later fragment of one is Python's to count) */
        unsigned later = be16(f + 6) & 0x1FFF;
        if (!later && is_tunnel(f[9], f, (Py_ssize_t)(f[0] & 15) * 4, len))
            return tunnel4(f, len, ts, wire_len, verify, counts, out, fragment, depth);
        return later && is_tunnel(f[9], f, 0, 0) ? 0 : SKIP_NOT_ICMP;  /* (UDP: no port within 0 bytes) */
    }
    if (fragment != NULL && len >= 20 && f[0] == 0x45 && f[9] == 1 && (be16(f + 6) & 0x3FFF)) {
        /* decode/fast.py _ip4's fragment behind a 20-byte header, then decode/ip.py _fragment4's checks; a bad
         * checksum or fragment is left to Python, which counts it */
        Py_ssize_t total = be16(f + 2);
        if (total < 20 || total > len || (verify && word_sum(f, 20) % 0xFFFF))
            return 0;
        int more = (be16(f + 6) & 0x2000) != 0;
        if (total == 20 || (more && (total - 20) & 7))
            return 0;
        *fragment = f;
        return FRAGMENT4;
    }
    if (len < 28 || f[0] >> 4 != 4 || f[9] != 1 || (be16(f + 6) & 0x3FFF))
        return 0;
    Py_ssize_t header = (Py_ssize_t)(f[0] & 15) * 4;
    Py_ssize_t total = be16(f + 2);
    if (header < 20 || total < header + 8 || total > len)
        return 0;
    if (verify) {
        if (word_sum(f, header) % 0xFFFF)
            return 0;
        uint64_t sum = word_sum(f + header, total - header);
        if (sum == 0 || sum % 0xFFFF)
            return 0;
    }
    unsigned char options[40];
    Py_ssize_t n = 0;
    sender_options(f + 20, header - 20, 0, options, &n);
    return message(f + 12, f + 16, 0, f + header, total - header, ts, wire_len, options_bytes(options, n), counts,
                   out);
}

/* Whether the ICMPv6 message msg[0:size] from src to dst (16 bytes each) verifies: its words and the pseudo-header's
 * (source, destination, upper-layer length, next header 58; RFC 8200 8.1). Never all zero: 58 is in the sum. */
static int icmp6_verifies(const unsigned char *src, const unsigned char *dst, const unsigned char *msg, Py_ssize_t size)
{
    return (word_sum(src, 16) + word_sum(dst, 16) + (uint64_t)size + 58 + word_sum(msg, size)) % 0xFFFF == 0;
}

/* The ICMPv6 message at f[pos:end] of the IPv6 packet at f, after option headers whose options are
 * gathered[0:n] (none: gathered NULL): as ip4() returns. */
static int ip6_message(const unsigned char *f, Py_ssize_t end, Py_ssize_t pos, const unsigned char *gathered,
                       Py_ssize_t n, double ts, Py_ssize_t wire_len, int verify, Py_ssize_t *counts, PyObject **out)
{
    Py_ssize_t size = end - pos;
    if (size < 8)
        return 0;
    if (verify && !icmp6_verifies(f + 8, f + 24, f + pos, size))
        return 0;
    return message(f + 8, f + 24, 1, f + pos, size, ts, wire_len, options_bytes(gathered, n), counts, out);
}

/* decode/ip.py V6_WALKED: the next headers the decoder walks towards an ICMPv6 message (hop-by-hop, routing,
 * fragment, authentication, destination options, ICMPv6); any other is skipped as not ICMP. */
static int v6_walked(unsigned next_header)
{
    return next_header == 0 || next_header == 43 || next_header == 44 || next_header == 51 || next_header == 58
           || next_header == 60;
}

/* The IPv6 packet at f[0:len], as ip4(): no extension header, or hop-by-hop (first) and destination options
 * headers (decode/ip.py _walk6 walks the same; any other header is left to it). */
static int ip6(const unsigned char *f, Py_ssize_t len, double ts, Py_ssize_t wire_len, int verify,
               Py_ssize_t *counts, PyObject **out, const unsigned char **fragment, int depth)
{
    if (len >= 40 && f[0] >> 4 == 6) {
        unsigned first = f[6];  /* decode/ip.py V6_WALKED: anything else is skipped, before anything else */
        if (!v6_walked(first)) {
            if (!is_tunnel(first, f, 40, len))
                return SKIP_NOT_ICMP;
            /* a tunnel (decode/ip.py _ip6, then _walk6): its payload opened; cut short, Python's */
            Py_ssize_t end = 40 + (Py_ssize_t)be16(f + 4);
            if (end > len || !is_tunnel(first, f, 40, end))
                return 0;
            return decap(first, f + 40, end - 40, ts, wire_len, verify, counts, out, fragment, depth);
        }
    }
    if (len < 48 || f[0] >> 4 != 6)
        return 0;
    Py_ssize_t end = 40 + (Py_ssize_t)be16(f + 4);
    if (end > len)
        return 0;
    if (f[6] == 58)
        return ip6_message(f, end, 40, NULL, 0, ts, wire_len, verify, counts, out);
    if (f[6] == 44 && fragment != NULL) {
        /* decode/fast.py _ip6's fragment header behind the fixed one (not an atomic fragment), then decode/ip.py
         * _fragment6's checks: a next header it does not walk, an empty or unaligned fragment are left to it */
        unsigned offset_more = be16(f + 42), inner = f[40];
        Py_ssize_t size = end - 48;
        if (size < 0 || !(offset_more & 0xFFF9) || !v6_walked(inner))
            return 0;
        if (size == 0 || ((offset_more & 1) && (size & 7)))
            return 0;
        *fragment = f;
        return FRAGMENT6;
    }
    if (f[6] != 0 && f[6] != 60)
        return 0;  /* routing, authentication, fragment: the Python decoder's */
    /* the options of the headers walked, gathered as they are walked: they hold at most end - 40 bytes */
    unsigned char *gathered = PyMem_Malloc(end - 40);
    if (gathered == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    unsigned next = f[6];
    Py_ssize_t pos = 40, n = 0;
    int taken = 0;
    for (int walked = 1;; walked++) {
        if (next == 58) {
            taken = ip6_message(f, end, pos, gathered, n, ts, wire_len, verify, counts, out);
            break;
        }
        if (is_tunnel(next, f, pos, end)) {  /* behind option headers (decode/ip.py _walk6) */
            taken = decap(next, f + pos, end - pos, ts, wire_len, verify, counts, out, fragment, depth);
            break;
        }
        if (walked >= max_ext_headers || !(next == 60 || (next == 0 && pos == 40)) || pos + 2 > end)
            break;
        Py_ssize_t size = ((Py_ssize_t)f[pos + 1] + 1) * 8;
        if (pos + size > end)
            break;
        sender_options(f + pos + 2, size - 2, 1, gathered, &n);
        next = f[pos];
        pos += size;
    }
    PyMem_Free(gathered);
    return taken;
}

/* IPv4 or IPv6 at f[pos:len] by its version nibble (behind an MPLS label stack); anything else is not IP. */
static int by_version(const unsigned char *f, Py_ssize_t len, Py_ssize_t pos, double ts, Py_ssize_t wire_len,
                      int verify, Py_ssize_t *counts, PyObject **out, const unsigned char **fragment, int depth)
{
    if (len <= pos)
        return 0;
    if (f[pos] >> 4 == 4)
        return ip4(f + pos, len - pos, ts, wire_len, verify, counts, out, fragment, depth);
    if (f[pos] >> 4 == 6)
        return ip6(f + pos, len - pos, ts, wire_len, verify, counts, out, fragment, depth);
    return SKIP_NOT_IP;
}

/* Network layer by ethertype at f[pos:len], after any VLAN tags, through an MPLS label stack or a PPPoE session
 * header (decode/link.py ethertype_layer, mpls, pppoe; what they count as truncated or too deep is Python's). */
static int by_ethertype(const unsigned char *f, Py_ssize_t len, unsigned ethertype, Py_ssize_t pos, double ts,
                        Py_ssize_t wire_len, int verify, Py_ssize_t *counts, PyObject **out,
                        const unsigned char **fragment, int depth)
{
    while (is_vlan_tpid(ethertype)) {
        if (len < pos + 4)
            return 0;
        ethertype = be16(f + pos + 2);
        pos += 4;
    }
    if (ethertype == 0x0800)
        return ip4(f + pos, len - pos, ts, wire_len, verify, counts, out, fragment, depth);
    if (ethertype == 0x86DD)
        return ip6(f + pos, len - pos, ts, wire_len, verify, counts, out, fragment, depth);
    if (ethertype == ETHERTYPE_MPLS_UNICAST || ethertype == ETHERTYPE_MPLS_MULTICAST) {
        for (int labels = 0;; labels++) {
            if (labels == max_mpls_labels || len < pos + 4)
                return 0;
            int bottom = f[pos + 2] & 1;
            pos += 4;
            if (bottom)
                return by_version(f, len, pos, ts, wire_len, verify, counts, out, fragment, depth);
        }
    }
    if (ethertype == ETHERTYPE_PPPOE_SESSION) {
        if (len < pos + 8)
            return 0;
        unsigned protocol = be16(f + pos + 6);
        if (f[pos] != 0x11 || f[pos + 1] != 0 || (protocol != PPP_IPV4 && protocol != PPP_IPV6))
            return SKIP_NOT_IP;
        return (protocol == PPP_IPV4 ? ip4 : ip6)(f + pos + 8, len - pos - 8, ts, wire_len, verify, counts, out,
                                                  fragment, depth);
    }
    return SKIP_NOT_IP;  /* decode/link.py ethertype_layer: NOT_IP */
}

/* The Ethernet frame p[0:n] a tunnel carries (decode/encap.py _ether), as ip4() returns. */
static int inner_ethernet(const unsigned char *p, Py_ssize_t n, double ts, Py_ssize_t wire_len, int verify,
                          Py_ssize_t *counts, PyObject **out, const unsigned char **fragment, int depth)
{
    if (n < 14)
        return 0;
    return by_ethertype(p, n, be16(p + 12), 14, ts, wire_len, verify, counts, out, fragment, depth);
}

/* GRE's or Geneve's payload p[0:n], by its protocol (an ethertype; decode/encap.py _by_protocol). */
static int by_protocol(unsigned protocol, const unsigned char *p, Py_ssize_t n, double ts, Py_ssize_t wire_len,
                       int verify, Py_ssize_t *counts, PyObject **out, const unsigned char **fragment, int depth)
{
    if (protocol == 0x0800)
        return ip4(p, n, ts, wire_len, verify, counts, out, fragment, depth);
    if (protocol == 0x86DD)
        return ip6(p, n, ts, wire_len, verify, counts, out, fragment, depth);
    if (protocol == ETHERTYPE_TEB)
        return inner_ethernet(p, n, ts, wire_len, verify, counts, out, fragment, depth);
    return SKIP_NOT_IP;
}

/* decode/encap.py _gre: version 0 without routing, its optional fields, then IP, Ethernet or ERSPAN (I, II, III). */
static int gre(const unsigned char *p, Py_ssize_t n, double ts, Py_ssize_t wire_len, int verify, Py_ssize_t *counts,
               PyObject **out, const unsigned char **fragment, int depth)
{
    if (n < 4)
        return 0;
    unsigned flags = be16(p), protocol = be16(p + 2);
    if (flags & (GRE_VERSION | GRE_R))
        return 0;
    Py_ssize_t pos = 4 + 4 * (((flags & GRE_C) != 0) + ((flags & GRE_K) != 0) + ((flags & GRE_S) != 0));
    if (protocol == ETHERTYPE_ERSPAN2) {
        if (flags & GRE_S) {  /* type II; type I has no header of its own */
            if (n - pos < 8 || p[pos] >> 4 != 1)
                return 0;
            pos += 8;
        }
    } else if (protocol == ETHERTYPE_ERSPAN3) {
        if (n - pos < 12 || p[pos] >> 4 != 2)
            return 0;
        pos += 12 + (p[pos + 11] & 1 ? 8 : 0);  /* the O bit: a platform-specific subheader */
    } else
        return n < pos ? 0 : by_protocol(protocol, p + pos, n - pos, ts, wire_len, verify, counts, out, fragment,
                                         depth);
    return n < pos ? 0 : inner_ethernet(p + pos, n - pos, ts, wire_len, verify, counts, out, fragment, depth);
}

/* decode/encap.py _udp: VXLAN (the I flag, then Ethernet) or Geneve (version 0, its options, then by protocol). */
static int udp_tunnel(const unsigned char *p, Py_ssize_t n, double ts, Py_ssize_t wire_len, int verify,
                      Py_ssize_t *counts, PyObject **out, const unsigned char **fragment, int depth)
{
    if (n < 8)
        return 0;
    Py_ssize_t size = be16(p + 4);
    if (size < 8 || size > n)
        return 0;
    unsigned port = be16(p + 2);
    p += 8;
    n = size - 8;
    if (n < 8)
        return 0;
    if (port == UDP_VXLAN)
        return p[0] & 0x08 ? inner_ethernet(p + 8, n - 8, ts, wire_len, verify, counts, out, fragment, depth) : 0;
    Py_ssize_t header = 8 + 4 * (Py_ssize_t)(p[0] & 0x3F);
    if (p[0] >> 6 || n < header)
        return 0;
    return by_protocol(be16(p + 2), p + header, n - header, ts, wire_len, verify, counts, out, fragment, depth);
}

/* The packet the tunnel of protocol proto (is_tunnel) carries in the IP payload p[0:n] (decode/encap.py _decap);
 * past decode/linktypes.py MAX_ENCAPSULATIONS, Python's to count. As ip4() returns. */
static int decap(unsigned proto, const unsigned char *p, Py_ssize_t n, double ts, Py_ssize_t wire_len, int verify,
                 Py_ssize_t *counts, PyObject **out, const unsigned char **fragment, int depth)
{
    if (depth >= max_encapsulations)
        return 0;
    depth++;
    frame_tunnelled = 1;
    if (proto == PROTO_IPIP)
        return ip4(p, n, ts, wire_len, verify, counts, out, fragment, depth);
    if (proto == PROTO_IPV6)
        return ip6(p, n, ts, wire_len, verify, counts, out, fragment, depth);
    if (proto == PROTO_GRE)
        return gre(p, n, ts, wire_len, verify, counts, out, fragment, depth);
    return udp_tunnel(p, n, ts, wire_len, verify, counts, out, fragment, depth);
}

static int frame(int link, const unsigned char *f, Py_ssize_t len, double ts, int verify, Py_ssize_t *counts,
                 PyObject **out, const unsigned char **fragment)
{
    switch (link) {
    case LINK_ETHERNET:
        return len < 14 ? 0 : by_ethertype(f, len, be16(f + 12), 14, ts, len, verify, counts, out, fragment, 0);
    case LINK_SLL:
        return len < 16 ? 0 : by_ethertype(f, len, be16(f + 14), 16, ts, len, verify, counts, out, fragment, 0);
    case LINK_SLL2:
        return len < 20 ? 0 : by_ethertype(f, len, be16(f), 20, ts, len, verify, counts, out, fragment, 0);
    case LINK_RAW:
        if (len < 1)
            return 0;
        if (f[0] >> 4 == 4)
            return ip4(f, len, ts, len, verify, counts, out, fragment, 0);
        return f[0] >> 4 == 6 ? ip6(f, len, ts, len, verify, counts, out, fragment, 0) : 0;
    case LINK_RAW4:
        return ip4(f, len, ts, len, verify, counts, out, fragment, 0);
    case LINK_RAW6:
        return ip6(f, len, ts, len, verify, counts, out, fragment, 0);
    }
    return 0;
}

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* The fragments decode_batch hands the reassembler (its `fragments` argument). */
typedef struct {
    PyObject *add;          /* the reassembler's bound add, or add_from_frame when it keeps frames */
    PyObject *reassembler;
    PyObject *frame_type;   /* source/batch.py CapturedFrame when it keeps frames, else NULL */
    PyObject *assembled;    /* list: (index, ts, src, dst, datagram or None, partials or None) */
    Py_ssize_t handed;      /* fragment frames handed to it */
} Fragments;

/* The int of the second the last captured_frame came in: the frames of one second share it (a jumbo datagram's
 * fragments do), so that the evidence recorder reads one object for their clocks, not one out of the cache each. */
static PyObject *frame_second = NULL;
static uint32_t frame_second_value = 0;

/* A frame as captured (CapturedFrame(sec, usec, bytes)), the named tuple built as its __new__ builds it. */
static PyObject *captured_frame(PyTypeObject *type, uint32_t sec, uint32_t usec, const unsigned char *f,
                                Py_ssize_t cap)
{
    if (frame_second == NULL || frame_second_value != sec) {
        PyObject *second = PyLong_FromUnsignedLong(sec);
        if (second == NULL)
            return NULL;
        Py_XSETREF(frame_second, second);
        frame_second_value = sec;
    }
    PyObject *items[3] = {Py_NewRef(frame_second), PyLong_FromUnsignedLong(usec),
                          PyBytes_FromStringAndSize((const char *)f, cap)};
    PyObject *frame = items[0] && items[1] && items[2] ? type->tp_alloc(type, 3) : NULL;
    for (int i = 0; i < 3; i++) {
        if (frame != NULL)
            PyTuple_SET_ITEM(frame, i, items[i]);
        else
            Py_XDECREF(items[i]);
    }
    return frame;
}

/* decode/ip.py _fragment4 and _fragment6 for the fragment (FRAGMENT4 or FRAGMENT6, `kind`) whose IP header is at
 * ip, in the frame f[0:cap]: the reassembler's add (add_from_frame where it keeps frames: the frame, copied once,
 * and where the fragment's data is in it), then its partials taken. 0 when it gave nothing; 1 when a
 * datagram completed or partials were handed on (an item appended to fragments->assembled, which the Python
 * decoder decodes); -1 on error. */
static int hand_fragment(Fragments *fragments, int kind, const unsigned char *ip, double ts, const unsigned char *f,
                         Py_ssize_t cap, const uint32_t *record, Py_ssize_t index)
{
    static PyObject *has_partials = NULL, *take_partials = NULL;
    if (has_partials == NULL && (has_partials = PyUnicode_InternFromString("has_partials")) == NULL)
        return -1;
    if (take_partials == NULL && (take_partials = PyUnicode_InternFromString("take_partials")) == NULL)
        return -1;
    int v6 = kind == FRAGMENT6;
    PyObject *src = address(ip + (v6 ? 8 : 12), v6 ? 16 : 4), *dst = address(ip + (v6 ? 24 : 16), v6 ? 16 : 4);
    PyObject *proto, *key = NULL;
    long offset;
    int more;
    Py_ssize_t at, size; /* where the fragment's data is in the frame: f[at : at + size] (at from ip, then f) */
    if (v6) { /* decode/fragments.py key_v6: (source, destination, identification) */
        unsigned offset_more = be16(ip + 42);
        offset = (long)(offset_more >> 3) * 8;
        more = offset_more & 1;
        proto = u16_int(ip[40]);
        PyObject *ident = PyLong_FromUnsignedLong(be32(ip + 44));
        if (src && dst && ident)
            key = PyTuple_Pack(3, src, dst, ident);
        Py_XDECREF(ident);
        at = 48;
        size = (Py_ssize_t)be16(ip + 4) - 8;
    }
    else { /* key_v4: (source, destination, protocol, identification) */
        unsigned flags = be16(ip + 6);
        offset = (long)(flags & 0x1FFF) * 8;
        more = (flags & 0x2000) != 0;
        proto = u16_int(1);
        PyObject *ident = u16_int(be16(ip + 4));
        if (src && dst && ident && proto)
            key = PyTuple_Pack(4, src, dst, proto, ident);
        Py_XDECREF(ident);
        at = 20;
        size = (Py_ssize_t)be16(ip + 2) - 20;
    }
    at += ip - f;
    PyObject *args[8] = {key, PyFloat_FromDouble(ts), PyLong_FromLong(offset), Py_NewRef(more ? Py_True : Py_False)};
    if (fragments->frame_type) { /* add_from_frame(key, ts, offset, more, proto, frame, at, size) */
        args[4] = proto;
        args[5] = captured_frame((PyTypeObject *)fragments->frame_type, record[0], record[1], f, cap);
        args[6] = PyLong_FromSsize_t(at);
        args[7] = PyLong_FromSsize_t(size);
    } else { /* add(key, ts, offset, more, data, proto, wire_len, None) */
        args[4] = PyBytes_FromStringAndSize((const char *)f + at, size);
        args[5] = proto;
        args[6] = PyLong_FromSsize_t(cap); /* the wire length: the captured one (as _batch_frame gives it) */
        args[7] = Py_NewRef(Py_None);
    }
    PyObject *datagram = NULL, *partials = NULL;
    int rc = -1, made = 1;
    for (int i = 0; i < 8; i++)
        made &= args[i] != NULL;
    if (made && src && dst)
        datagram = PyObject_Vectorcall(fragments->add, args, 8, NULL);
    if (datagram != NULL) {
        PyObject *has = PyObject_GetAttr(fragments->reassembler, has_partials);
        int any = has ? PyObject_IsTrue(has) : -1;
        Py_XDECREF(has);
        if (any > 0 && (partials = PyObject_CallMethodNoArgs(fragments->reassembler, take_partials)) == NULL)
            any = -1;
        if (any == 0 && datagram == Py_None)
            rc = 0;
        else if (any >= 0) {
            PyObject *at = PyLong_FromSsize_t(index); /* not Py_BuildValue: its format parsed a fragment took ~900 */
            PyObject *item = at == NULL ? NULL : PyTuple_Pack(6, at, args[1], src, dst, datagram,
                                                              partials ? partials : Py_None);
            rc = item != NULL && PyList_Append(fragments->assembled, item) == 0 ? 1 : -1;
            Py_XDECREF(at);
            Py_XDECREF(item);
        }
    }
    Py_XDECREF(datagram);
    Py_XDECREF(partials);
    Py_XDECREF(src);
    Py_XDECREF(dst);
    for (int i = 0; i < 8; i++)
        Py_XDECREF(args[i]);
    return rc;
}

PyDoc_STRVAR(decode_batch_doc,
"decode_batch(buf, meta, link, verify_checksums, type_counts, skip_counts[, fragments])\n"
"    -> (packets, rest) or, with fragments, (packets, rest, assembled, handed)\n\n"
"Decode the fast-path frames of a libpcap batch (meta: 16-byte records of seconds, microseconds,\n"
"offset in buf, captured length, native byte order). packets has one item per frame in order: an\n"
"IcmpPacket, or None where the frame is skipped or left to the Python decoder; rest lists the\n"
"indexes of those left (empty when there are none). type_counts (512 ints) counts the messages\n"
"decoded, skip_counts (2 ints) the frames skipped as not IP and as not ICMP (a third int, when there is one:\n"
"the frames taken in which a tunnel was opened, decode/stats.py decapsulated).\n\n"
"fragments (None, or (reassembler, CapturedFrame or None)): the fragments decode/fast.py reads without dpkt\n"
"(IPv4 behind a 20-byte header, IPv6 with the fragment header behind the fixed one) that decode/ip.py\n"
"_fragment4 and _fragment6 hand the reassembler are handed to it from here (reassembler.add; with CapturedFrame\n"
"their frames as captured), in frame order, until the first frame left to Python (after it, every fragment is\n"
"left too, so that the reassembler sees them all in frame order); handed counts them. assembled lists, for each\n"
"one that completed a datagram or made the reassembler hand on partials, (index, ts, src, dst, datagram or\n"
"None, partials or None) for the Python decoder to decode; its packets item is None until it does.");

static PyObject *decode_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 6 && nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "decode_batch takes 6 or 7 arguments");
        return NULL;
    }
    Fragments fragments = {NULL, NULL, NULL, NULL, 0};
    Fragments *to_reassemble = NULL;
    if (nargs == 7 && args[6] != Py_None) {
        PyObject *frame_type = NULL;
        if (!PyArg_ParseTuple(args[6], "OO:decode_batch fragments", &fragments.reassembler, &frame_type))
            return NULL;
        if (frame_type != Py_None && !(PyType_Check(frame_type) && PyType_IsSubtype((PyTypeObject *)frame_type,
                                                                                    &PyTuple_Type))) {
            PyErr_SetString(PyExc_TypeError, "decode_batch: fragments' frame type must be a named tuple or None");
            return NULL;
        }
        fragments.frame_type = frame_type == Py_None ? NULL : frame_type;
        to_reassemble = &fragments;
    }
    if (packet_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "decode_batch: bind() the record type first");
        return NULL;
    }
    PyObject *counts = args[4], *skip_counts = args[5];
    if (!PyBytes_Check(args[0]) || !PyBytes_Check(args[1]) || !PyList_CheckExact(counts)
        || PyList_GET_SIZE(counts) != 512 || !PyList_CheckExact(skip_counts)
        || (PyList_GET_SIZE(skip_counts) != N_SKIPS && PyList_GET_SIZE(skip_counts) != N_SKIPS + 1)) {
        PyErr_SetString(PyExc_TypeError, "decode_batch(bytes, bytes, int, bool, list of 512 ints, list of 2 or 3 ints)");
        return NULL;
    }
    long link = PyLong_AsLong(args[2]);
    if (link == -1 && PyErr_Occurred())
        return NULL;
    int verify = PyObject_IsTrue(args[3]);
    if (verify < 0)
        return NULL;
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t buf_len = PyBytes_GET_SIZE(args[0]);
    const unsigned char *meta = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[1]) / 16;

    Py_ssize_t batch_counts[512] = {0}, batch_skips[N_SKIPS + 1] = {0}; /* + the frames with a tunnel opened */
    PyObject *packets = PyList_New(n);
    PyObject *rest = PyList_New(0);
    if (packets == NULL || rest == NULL)
        goto fail;
    if (to_reassemble != NULL) {
        if ((fragments.add = PyObject_GetAttrString(fragments.reassembler,
                                                    fragments.frame_type ? "add_from_frame" : "add")) == NULL
            || (fragments.assembled = PyList_New(0)) == NULL)
            goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t record[4];
        memcpy(record, meta + 16 * i, sizeof record);
        uint64_t off = record[2], cap = record[3];
        PyObject *pkt = NULL;
        int taken = 0;
        if (off + cap <= (uint64_t)buf_len) {
            /* as Python computes it: sec + usec * 1e-6 (no fused multiply-add: see setup.py) */
            double ts = (double)record[0] + (double)record[1] * 1e-6;
            const unsigned char *fragment = NULL;
            /* a fragment after a frame left to Python is left too: the reassembler sees them in frame order */
            int reassemble = to_reassemble != NULL && PyList_GET_SIZE(rest) == 0;
            frame_tunnelled = 0;
            taken = frame((int)link, buf + off, (Py_ssize_t)cap, ts, verify, batch_counts, &pkt,
                          reassemble ? &fragment : NULL);
            if (taken == FRAGMENT4 || taken == FRAGMENT6) {
                fragments.handed++;
                if (hand_fragment(&fragments, taken, fragment, ts, buf + off, (Py_ssize_t)cap, record, i) < 0)
                    goto fail;
                pkt = Py_NewRef(Py_None);
                taken = 1;
            }
            if (taken < 0)
                goto fail;
            if (taken && frame_tunnelled)  /* (a frame left to Python is counted there) */
                batch_skips[N_SKIPS]++;
        }
        if (taken >= SKIPPED) {
            batch_skips[taken - SKIPPED]++;
            pkt = Py_NewRef(Py_None);
        } else if (!taken) {
            PyObject *index = PyLong_FromSsize_t(i);
            if (index == NULL || PyList_Append(rest, index) < 0) {
                Py_XDECREF(index);
                goto fail;
            }
            Py_DECREF(index);
            pkt = Py_NewRef(Py_None);
        }
        PyList_SET_ITEM(packets, i, pkt);
    }
    if (add_counts(counts, batch_counts, 512) < 0 || add_counts(skip_counts, batch_skips, PyList_GET_SIZE(skip_counts)) < 0)
        goto fail;
    PyObject *result = to_reassemble == NULL ? PyTuple_Pack(2, packets, rest)
                                             : Py_BuildValue("(OOOn)", packets, rest, fragments.assembled,
                                                             fragments.handed);
    Py_DECREF(packets);
    Py_DECREF(rest);
    Py_XDECREF(fragments.add);
    Py_XDECREF(fragments.assembled);
    return result;
fail:
    Py_XDECREF(packets);  /* a list from PyList_New holds NULLs where nothing was set: that is allowed */
    Py_XDECREF(rest);
    Py_XDECREF(fragments.add);
    Py_XDECREF(fragments.assembled);
    return NULL;
}

/* The worker (of n) whose share an Ethernet frame f[0:len] is: the hash of runmode/partition.py
 * share_worker (its Python reference), on the captured bytes. 32-bit unsigned arithmetic, as BPF's. */
#define GOLDEN 2654435761u


static uint32_t fold_words(const unsigned char *p) { return be32(p) ^ be32(p + 4) ^ be32(p + 8) ^ be32(p + 12); }

/* runmode/partition.py _share_pair: behind an MPLS label stack or a PPPoE session header, the ethertype of the IP
 * header at *ip (0: none within len). */
static unsigned share_beneath(const unsigned char *f, Py_ssize_t len, unsigned ethertype, Py_ssize_t *ip)
{
    Py_ssize_t at = *ip;
    if (ethertype == ETHERTYPE_MPLS_UNICAST || ethertype == ETHERTYPE_MPLS_MULTICAST) {
        for (int labels = 0;; labels++) {
            if (labels == max_mpls_labels || len < at + 4)
                return 0;
            at += 4;
            if (f[at - 2] & 1)
                break;
        }
        *ip = at;
        return len <= at ? 0 : f[at] >> 4 == 4 ? 0x0800 : f[at] >> 4 == 6 ? 0x86DD : 0;
    }
    unsigned protocol = len >= at + 8 ? be16(f + at + 6) : 0;
    *ip = at + 8;
    return protocol == PPP_IPV4 ? 0x0800 : protocol == PPP_IPV6 ? 0x86DD : 0;
}

static long share_worker(const unsigned char *f, Py_ssize_t len, long n)
{
    for (Py_ssize_t at = 12; len >= at + 2; at += 4) { /* through any number of tags, as by_ethertype */
        Py_ssize_t ip = at + 2;
        uint32_t pair;
        unsigned ethertype = be16(f + at);
        if (is_vlan_tpid(ethertype) && len >= at + 6)
            continue;
        if (ethertype == ETHERTYPE_MPLS_UNICAST || ethertype == ETHERTYPE_MPLS_MULTICAST
            || ethertype == ETHERTYPE_PPPOE_SESSION)
            ethertype = share_beneath(f, len, ethertype, &ip);
        if (ethertype == 0x0800 && len >= ip + 20)
            pair = be32(f + ip + 12) + be32(f + ip + 16);
        else if (ethertype == 0x86DD && len >= ip + 40)
            pair = fold_words(f + ip + 8) + fold_words(f + ip + 24);
        else
            return 0;
        return (long)(((uint32_t)(pair * GOLDEN) >> 16) % (uint32_t)n);
    }
    return 0;
}

PyDoc_STRVAR(share_select_doc,
"share_select(buf, meta, index, workers) -> bytes\n\n"
"The 16-byte records of meta (a libpcap batch of Ethernet frames in buf) whose frame is worker\n"
"index's share of workers (runmode/partition.py share_worker). A record pointing outside buf is\n"
"worker 0's.");

static PyObject *share_select(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "share_select(bytes, bytes, int, int)");
        return NULL;
    }
    long index = PyLong_AsLong(args[2]), workers = PyLong_AsLong(args[3]);
    if (PyErr_Occurred())
        return NULL;
    if (workers < 1 || index < 0 || index >= workers) {
        PyErr_SetString(PyExc_ValueError, "share_select: 0 <= index < workers");
        return NULL;
    }
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t buf_len = PyBytes_GET_SIZE(args[0]);
    const char *meta = PyBytes_AS_STRING(args[1]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[1]) / 16;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * 16);
    if (out == NULL)
        return NULL;
    char *dst = PyBytes_AS_STRING(out);
    Py_ssize_t kept = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t record[4];
        memcpy(record, meta + 16 * i, sizeof record);
        uint64_t off = record[2], cap = record[3];
        long owner = off + cap <= (uint64_t)buf_len ? share_worker(buf + off, (Py_ssize_t)cap, workers) : 0;
        if (owner == index)
            memcpy(dst + 16 * kept++, meta + 16 * i, 16);
    }
    if (_PyBytes_Resize(&out, kept * 16) < 0)
        return NULL;
    return out;
}

PyDoc_STRVAR(bind_doc,
"bind(record_type, vlan_tpids[, max_ext_headers[, max_option_items[, max_mpls_labels, max_encapsulations]]])\n\n"
"Use record_type (a slots dataclass with the fields of packet.IcmpPacket, in any order) for the\n"
"records decode_batch builds; they are filled slot by slot, as its __init__ would. vlan_tpids: the\n"
"ethertypes of the VLAN tags walked through (a tuple of at most 8 ints). max_ext_headers: the IPv6\n"
"headers walked towards an ICMPv6 message, that one included (decode/ip.py MAX_EXT_HEADERS).\n"
"max_option_items: the items read in one option area (decode/ip.py MAX_OPTION_ITEMS). max_mpls_labels,\n"
"max_encapsulations: the MPLS labels popped and the tunnels opened in one frame (decode/linktypes.py).");

static int bind_tpids(PyObject *tpids)
{
    unsigned values[MAX_TPIDS];
    if (!PyTuple_Check(tpids) || PyTuple_GET_SIZE(tpids) > MAX_TPIDS) {
        PyErr_SetString(PyExc_TypeError, "bind(): vlan_tpids must be a tuple of at most 8 ints");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(tpids);
    for (Py_ssize_t i = 0; i < n; i++) {
        long value = PyLong_AsLong(PyTuple_GET_ITEM(tpids, i));
        if (value == -1 && PyErr_Occurred())
            return -1;
        if (value < 0 || value > 0xFFFF) {
            PyErr_SetString(PyExc_ValueError, "bind(): a VLAN TPID is a 16-bit ethertype");
            return -1;
        }
        values[i] = (unsigned)value;
    }
    memcpy(vlan_tpids, values, sizeof values);
    n_vlan_tpids = (int)n;
    return 0;
}

/* bind()'s count argument `name`, 1 to `most`, in *out; -1 with an exception set. */
static int bound_arg(PyObject *arg, long most, const char *name, long *out)
{
    long value = PyLong_AsLong(arg);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (value < 1 || value > most) {
        PyErr_Format(PyExc_ValueError, "bind(): %s must be 1 to %ld", name, most);
        return -1;
    }
    *out = value;
    return 0;
}

static PyObject *bind(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs < 2 || nargs > 6 || nargs == 5) {
        PyErr_SetString(PyExc_TypeError,
                        "bind() takes a record type, the VLAN TPIDs, the most IPv6 headers, the most option items, "
                        "the most MPLS labels and the most encapsulations");
        return NULL;
    }
    long headers = max_ext_headers, items = max_option_items, labels = max_mpls_labels, tunnels = max_encapsulations;
    if ((nargs >= 3 && bound_arg(args[2], 65535, "max_ext_headers", &headers) < 0)
        || (nargs >= 4 && bound_arg(args[3], 4096, "max_option_items", &items) < 0)
        || (nargs == 6 && (bound_arg(args[4], 255, "max_mpls_labels", &labels) < 0
                           || bound_arg(args[5], 256, "max_encapsulations", &tunnels) < 0)))
        return NULL;
    PyObject *type_obj = args[0];
    if (!PyType_Check(type_obj)) {
        PyErr_SetString(PyExc_TypeError, "bind() takes a type");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)type_obj;
    if (type->tp_dictoffset != 0 || type->tp_itemsize != 0) {
        PyErr_SetString(PyExc_TypeError, "bind(): the record type must have __slots__ only");
        return NULL;
    }
    /* every slot must be one decode_batch fills: a field added to the record must be added here */
    PyObject *slots = PyDict_GetItemString(type->tp_dict, "__slots__");
    if (slots == NULL || PySequence_Size(slots) != N_FIELDS) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "bind(): the record type must have exactly the %d slots decode_batch fills",
                     N_FIELDS);
        return NULL;
    }
    Py_ssize_t offsets[N_FIELDS];
    if (slot_offsets(type_obj, FIELD_NAMES, N_FIELDS, offsets) < 0)
        return NULL;
    if (bind_tpids(args[1]) < 0)
        return NULL;
    if (no_options == NULL && (no_options = PyBytes_FromStringAndSize("", 0)) == NULL)
        return NULL;
    memcpy(slot_offset, offsets, sizeof offsets);
    max_ext_headers = (int)headers;
    max_option_items = (int)items;
    max_mpls_labels = (int)labels;
    max_encapsulations = (int)tunnels;
    Py_INCREF(type);
    Py_XSETREF(packet_type, type);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(checksum_ok_doc,
"checksum_ok(data) -> bool\n\n"
"Whether data (bytes-like), which contains its checksum field, verifies as an internet checksum (RFC 1071;\n"
"an odd last byte padded with a zero): its words' one's-complement sum is 0xFFFF. All-zero words sum to\n"
"+0, which does not verify. decode/checksum.py checksum_ok_py is the Python reference.");

static PyObject *checksum_ok(PyObject *module, PyObject *data)
{
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int verifies = checksum_verifies((const unsigned char *)view.buf, view.len);
    PyBuffer_Release(&view);
    return PyBool_FromLong(verifies);
}

PyDoc_STRVAR(icmp4_message_doc,
"icmp4_message(ts, message, src, dst, wire_len, verify, type_counts) -> IcmpPacket | None\n\n"
"The record of a reassembled IPv4 datagram's ICMP message (bytes), as decode/icmp.py IcmpLayer._icmp makes it\n"
"(the reference), its type counted in type_counts; None, with nothing counted, for a message that path would\n"
"count as an error or a bad checksum (shorter than its header: an echo's 8 bytes, 4 for the others; a checksum\n"
"that does not verify, when `verify`): the Python path takes those.");

PyDoc_STRVAR(icmp6_message_doc,
"icmp6_message(ts, message, src, dst, final_dst, wire_len, verify, type_counts) -> IcmpPacket | None\n\n"
"icmp4_message for the ICMPv6 message of a reassembled IPv6 datagram whose fragmentable part is that message:\n"
"its checksum covers the pseudo-header for src and final_dst (the destination a routing header names, RFC 8200\n"
"8.1; dst when there is none), and the record names dst.");

/* icmp4_message and icmp6_message: args[] is (ts, message, src, dst, [final_dst,] wire_len, verify, type_counts). */
static PyObject *reassembled_message(PyObject *const *args, Py_ssize_t nargs, int ipv6)
{
    Py_ssize_t address_len = ipv6 ? 16 : 4, at = ipv6 ? 5 : 4; /* at: wire_len's place */
    int ok = nargs == at + 3;
    for (int i = 2; ok && i < at; i++) /* the addresses */
        ok = PyBytes_Check(args[i]) && PyBytes_GET_SIZE(args[i]) == address_len;
    if (!ok || !PyBytes_Check(args[1]) || !PyList_Check(args[at + 2]) || PyList_GET_SIZE(args[at + 2]) != 512) {
        PyErr_SetString(PyExc_TypeError, ipv6 ? "icmp6_message(ts: float, message: bytes, src, dst, final_dst: 16 "
                                                "bytes, wire_len: int, verify: bool, type_counts: list of 512)"
                                              : "icmp4_message(ts: float, message: bytes, src: 4 bytes, dst: 4 bytes, "
                                                "wire_len: int, verify: bool, type_counts: list of 512)");
        return NULL;
    }
    if (packet_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind() first");
        return NULL;
    }
    double ts = PyFloat_AsDouble(args[0]);
    Py_ssize_t wire_len = PyLong_AsSsize_t(args[at]);
    int verify = PyObject_IsTrue(args[at + 1]);
    if ((ts == -1.0 || wire_len == -1) && PyErr_Occurred())
        return NULL;
    if (verify < 0)
        return NULL;
    const unsigned char *msg = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    const unsigned char *src = (const unsigned char *)PyBytes_AS_STRING(args[2]);
    const unsigned char *dst = (const unsigned char *)PyBytes_AS_STRING(args[3]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[1]);
    /* message() takes 8 bytes or more; an echo needs its identifier and sequence number */
    if (size < 8)
        Py_RETURN_NONE;
    if (verify && !(ipv6 ? icmp6_verifies(src, (const unsigned char *)PyBytes_AS_STRING(args[4]), msg, size)
                         : checksum_verifies(msg, size)))
        Py_RETURN_NONE;
    Py_ssize_t counts[512] = {0};
    PyObject *out = NULL;
    if (message(src, dst, ipv6, msg, size, ts, wire_len, Py_NewRef(no_options), counts, &out) < 0)
        return NULL;
    if (add_counts(args[at + 2], counts, 512) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyObject *icmp4_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    return reassembled_message(args, nargs, 0);
}

static PyObject *icmp6_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    return reassembled_message(args, nargs, 1);
}

/* -- partials and due messages (decode/ip.py _hand_on, decode/decoder.py in_frame_order: the references) ------ */

/* packet.HeadlessPacket (a subclass of the record type) and fragments.Datagram, and where their slots live, set by
 * bind_headless(); HEADLESS, a headless packet's icmp_type. */
enum { H_SENT, H_RUNS, N_HEADLESS };
static const char *const HEADLESS_FIELDS[N_HEADLESS] = {"sent", "runs"};
enum { D_TS, D_PAYLOAD, D_WIRE_LEN, D_FRAMES, D_KEY, D_SENT, D_RUNS, N_DATAGRAM };
static const char *const DATAGRAM_FIELDS[N_DATAGRAM] = {"ts", "payload", "wire_len", "frames", "key", "sent", "runs"};
static PyTypeObject *headless_type = NULL, *datagram_type = NULL;
static Py_ssize_t headless_slot[N_HEADLESS], datagram_slot[N_DATAGRAM];
static PyObject *headless_value = NULL, *code_zero = NULL, *minus_one = NULL;

PyDoc_STRVAR(bind_headless_doc,
"bind_headless(headless_type, datagram_type, headless)\n\n"
"packet.HeadlessPacket (a subclass of the record type bind() was given, by way of PartialPacket, which holds\n"
"`sent`), fragments.Datagram and packet.HEADLESS, once, before hand_on_headless().");

static PyObject *bind_headless(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 || packet_type == NULL || !PyType_Check(args[0]) || !PyType_Check(args[1])
        || !PyType_IsSubtype((PyTypeObject *)args[0], packet_type) || !PyLong_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "bind_headless(headless_type: a subclass of the record type, "
                                         "datagram_type, headless: int), after bind()");
        return NULL;
    }
    Py_ssize_t headless[N_HEADLESS], datagram[N_DATAGRAM];
    PyTypeObject *partial = ((PyTypeObject *)args[0])->tp_base; /* packet.PartialPacket, where `sent` is */
    if (slot_offsets(args[0], HEADLESS_FIELDS + H_RUNS, 1, headless + H_RUNS) < 0
        || partial == NULL || slot_offsets((PyObject *)partial, HEADLESS_FIELDS + H_SENT, 1, headless + H_SENT) < 0
        || slot_offsets(args[1], DATAGRAM_FIELDS, N_DATAGRAM, datagram) < 0)
        return NULL;
    if ((code_zero == NULL && (code_zero = PyLong_FromLong(0)) == NULL)
        || (minus_one == NULL && (minus_one = PyLong_FromLong(-1)) == NULL))
        return NULL;
    memcpy(headless_slot, headless, sizeof headless);
    memcpy(datagram_slot, datagram, sizeof datagram);
    Py_XSETREF(headless_type, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(datagram_type, (PyTypeObject *)Py_NewRef(args[1]));
    Py_XSETREF(headless_value, Py_NewRef(args[2]));
    Py_RETURN_NONE;
}

/* What _hand_on does with a partial datagram here: HAND_HEADLESS, a HeadlessPacket made of it; HAND_DROPPED, a
 * tunnel's outer datagram with runs, dropped without a count; HAND_PYTHON, any other (decoded, or counted as a skip,
 * by _hand_on itself). */
enum { HAND_PYTHON, HAND_HEADLESS, HAND_DROPPED };

static int hand_kind(PyObject *datagram)
{
    if (!Py_IS_TYPE(datagram, datagram_type))
        return HAND_PYTHON;
    for (int i = 0; i < N_DATAGRAM; i++)
        if (SLOT(datagram, datagram_slot[i]) == NULL)
            return HAND_PYTHON;
    PyObject *key = SLOT(datagram, datagram_slot[D_KEY]), *runs = SLOT(datagram, datagram_slot[D_RUNS]);
    if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) < 3 || PyTuple_GET_SIZE(key) > 4 || !PyTuple_CheckExact(runs))
        return HAND_PYTHON;
    int has_runs = PyTuple_GET_SIZE(runs) > 0;
    if (PyTuple_GET_SIZE(key) == 4) { /* key_v4: (source, destination, protocol, identification) */
        PyObject *proto = PyTuple_GET_ITEM(key, 2);
        if (!PyLong_CheckExact(proto))
            return HAND_PYTHON;
        int overflow;
        long number = PyLong_AsLongAndOverflow(proto, &overflow); /* an int's: no exception */
        if (number != 1 || overflow) /* not PROTO_ICMP: a tunnel's outer datagram */
            return has_runs ? HAND_DROPPED : HAND_PYTHON;
    }
    return has_runs ? HAND_HEADLESS : HAND_PYTHON;
}

/* HeadlessPacket(datagram.ts, src, dst, len(key) == 3, HEADLESS, 0, -1, -1, payload, wire_len, b"", frames, sent,
 * runs), slot by slot. */
static PyObject *headless_packet(PyObject *datagram)
{
    PyObject *key = SLOT(datagram, datagram_slot[D_KEY]);
    PyObject *obj = headless_type->tp_alloc(headless_type, 0);
    if (obj == NULL)
        return NULL;
    PyObject *values[N_FIELDS] = {
        SLOT(datagram, datagram_slot[D_TS]), PyTuple_GET_ITEM(key, 0), PyTuple_GET_ITEM(key, 1),
        PyTuple_GET_SIZE(key) == 3 ? Py_True : Py_False, headless_value, code_zero, minus_one, minus_one,
        SLOT(datagram, datagram_slot[D_PAYLOAD]), SLOT(datagram, datagram_slot[D_WIRE_LEN]), no_options,
        SLOT(datagram, datagram_slot[D_FRAMES])};
    for (int i = 0; i < N_FIELDS; i++)
        SLOT(obj, slot_offset[i]) = Py_NewRef(values[i]);
    SLOT(obj, headless_slot[H_SENT]) = Py_NewRef(SLOT(datagram, datagram_slot[D_SENT]));
    SLOT(obj, headless_slot[H_RUNS]) = Py_NewRef(SLOT(datagram, datagram_slot[D_RUNS]));
    return obj;
}

PyDoc_STRVAR(hand_on_headless_doc,
"hand_on_headless(assembled, start, due) -> int\n\n"
"decode_batch's `assembled` items from `start` on, as Decoder._c_batch hands them on, while every partial of an item\n"
"is headless (or a tunnel's outer datagram with runs, dropped) and the item completes no datagram: each headless\n"
"one appended to `due` as (index, HeadlessPacket) (decode/ip.py _hand_on, the reference). The position of the\n"
"first item it leaves to Python (len(assembled) when none).");

static PyObject *hand_on_headless(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    Py_ssize_t start = nargs == 3 ? PyLong_AsSsize_t(args[1]) : -1;
    if (nargs != 3 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[2]) || start < 0
        || headless_type == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "hand_on_headless(assembled: list, start: int >= 0, due: list), after "
                                             "bind_headless()");
        return NULL;
    }
    PyObject *assembled = args[0], *due = args[2];
    Py_ssize_t at = start;
    for (; at < PyList_GET_SIZE(assembled); at++) {
        PyObject *item = PyList_GET_ITEM(assembled, at);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 6 || PyTuple_GET_ITEM(item, 4) != Py_None
            || !PyList_CheckExact(PyTuple_GET_ITEM(item, 5)))
            break;
        PyObject *partials = PyTuple_GET_ITEM(item, 5);
        int taken = 1;
        for (Py_ssize_t i = 0; taken && i < PyList_GET_SIZE(partials); i++)
            taken = hand_kind(PyList_GET_ITEM(partials, i)) != HAND_PYTHON;
        if (!taken)
            break;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(partials); i++) {
            PyObject *datagram = PyList_GET_ITEM(partials, i);
            if (hand_kind(datagram) != HAND_HEADLESS)
                continue;
            PyObject *pkt = headless_packet(datagram);
            PyObject *entry = pkt == NULL ? NULL : PyTuple_Pack(2, PyTuple_GET_ITEM(item, 0), pkt);
            Py_XDECREF(pkt);
            int failed = entry == NULL || PyList_Append(due, entry) < 0;
            Py_XDECREF(entry);
            if (failed)
                return NULL;
        }
    }
    return PyLong_FromSsize_t(at);
}

PyDoc_STRVAR(frames_in_order_doc,
"frames_in_order(packets, due) -> (packets, frames)\n\n"
"decode/decoder.py frames_in_order (its reference): a batch's packets (one per frame) with each message of `due`\n"
"((frame index, packet), in index order) before the packet of the frame it came due at, and each one's frame index.");

/* Whether a due message's frame index `at` is `index` (== as Python compares them). 1, 0, -1 with an exception. */
static int due_at(PyObject *at, Py_ssize_t index)
{
    if (PyLong_CheckExact(at)) {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(at, &overflow);
        return !overflow && value == index;
    }
    PyObject *number = PyLong_FromSsize_t(index);
    int equal = number == NULL ? -1 : PyObject_RichCompareBool(at, number, Py_EQ);
    Py_XDECREF(number);
    return equal;
}

static PyObject *frames_in_order(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "frames_in_order(packets: list, due: list)");
        return NULL;
    }
    PyObject *packets = args[0], *due = args[1];
    Py_ssize_t n = PyList_GET_SIZE(packets), d = PyList_GET_SIZE(due);
    for (Py_ssize_t i = 0; i < d; i++) {
        PyObject *entry = PyList_GET_ITEM(due, i);
        if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 2) {
            PyErr_SetString(PyExc_TypeError, "frames_in_order(): due holds (index, packet) pairs");
            return NULL;
        }
    }
    PyObject *out = PyList_New(n + d), *frames = PyList_New(n + d); /* items unset (NULL) on failure: released */
    if (out == NULL || frames == NULL)
        goto fail;
    Py_ssize_t pos = 0, made = 0;
    for (Py_ssize_t index = 0; index <= n; index++) {
        while (pos < d) { /* while due[pos][0] == index; after the last frame, the rest */
            PyObject *entry = PyList_GET_ITEM(due, pos), *at = PyTuple_GET_ITEM(entry, 0);
            int here = index < n ? due_at(at, index) : 1;
            if (here < 0)
                goto fail;
            if (!here)
                break;
            PyList_SET_ITEM(out, made, Py_NewRef(PyTuple_GET_ITEM(entry, 1)));
            PyList_SET_ITEM(frames, made++, Py_NewRef(at));
            pos++;
        }
        if (index < n) {
            PyObject *number = PyLong_FromSsize_t(index);
            if (number == NULL)
                goto fail;
            PyList_SET_ITEM(out, made, Py_NewRef(PyList_GET_ITEM(packets, index)));
            PyList_SET_ITEM(frames, made++, number);
        }
    }
    return Py_BuildValue("(NN)", out, frames);
fail:
    Py_XDECREF(out);
    Py_XDECREF(frames);
    return NULL;
}

static PyMethodDef methods[] = {
    {"checksum_ok", (PyCFunction)checksum_ok, METH_O, checksum_ok_doc},
    {"decode_batch", (PyCFunction)(void (*)(void))decode_batch, METH_FASTCALL, decode_batch_doc},
    {"bind", (PyCFunction)(void (*)(void))bind, METH_FASTCALL, bind_doc},
    {"share_select", (PyCFunction)(void (*)(void))share_select, METH_FASTCALL, share_select_doc},
    {"icmp4_message", (PyCFunction)(void (*)(void))icmp4_message, METH_FASTCALL, icmp4_message_doc},
    {"icmp6_message", (PyCFunction)(void (*)(void))icmp6_message, METH_FASTCALL, icmp6_message_doc},
    {"bind_headless", (PyCFunction)(void (*)(void))bind_headless, METH_FASTCALL, bind_headless_doc},
    {"hand_on_headless", (PyCFunction)(void (*)(void))hand_on_headless, METH_FASTCALL, hand_on_headless_doc},
    {"frames_in_order", (PyCFunction)(void (*)(void))frames_in_order, METH_FASTCALL, frames_in_order_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "icmpsensor.decode._fastdecode",
    "The decoder's batch fast path in C (see decode/fast.py Decoder.decode_batch).", -1, methods,
    NULL, NULL, NULL, NULL,
};

/* ENCAPSULATION: the constants above by their decode/linktypes.py name, which tests/unit/test_encap.py holds equal. */
static int add_encapsulation_constants(PyObject *module)
{
    PyObject *table = Py_BuildValue(
        "{sisisisisisisisisisisisisisisisisisisi}", "PROTO_IPIP", PROTO_IPIP, "PROTO_UDP", PROTO_UDP, "PROTO_IPV6", PROTO_IPV6,
        "PROTO_GRE", PROTO_GRE, "ETHERTYPE_MPLS_UNICAST", ETHERTYPE_MPLS_UNICAST, "ETHERTYPE_MPLS_MULTICAST",
        ETHERTYPE_MPLS_MULTICAST, "ETHERTYPE_PPPOE_SESSION", ETHERTYPE_PPPOE_SESSION, "ETHERTYPE_TEB", ETHERTYPE_TEB,
        "ETHERTYPE_ERSPAN2", ETHERTYPE_ERSPAN2, "ETHERTYPE_ERSPAN3", ETHERTYPE_ERSPAN3, "PPP_IPV4", PPP_IPV4,
        "PPP_IPV6", PPP_IPV6, "UDP_VXLAN", UDP_VXLAN, "UDP_GENEVE", UDP_GENEVE, "GRE_C", GRE_C, "GRE_R", GRE_R,
        "GRE_K", GRE_K, "GRE_S", GRE_S, "GRE_VERSION", GRE_VERSION);
    if (table == NULL)
        return -1;
    int rc = PyModule_AddObjectRef(module, "ENCAPSULATION", table);
    Py_DECREF(table);
    return rc;
}

PyMODINIT_FUNC PyInit__fastdecode(void)
{
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddIntConstant(module, "LINK_ETHERNET", LINK_ETHERNET) < 0
        || PyModule_AddIntConstant(module, "LINK_SLL", LINK_SLL) < 0
        || PyModule_AddIntConstant(module, "LINK_SLL2", LINK_SLL2) < 0
        || PyModule_AddIntConstant(module, "LINK_RAW", LINK_RAW) < 0
        || PyModule_AddIntConstant(module, "LINK_RAW4", LINK_RAW4) < 0
        || PyModule_AddIntConstant(module, "LINK_RAW6", LINK_RAW6) < 0
        || add_encapsulation_constants(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
