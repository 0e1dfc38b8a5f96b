"""Link types, ethertypes, address families and protocol numbers: the one copy every decoder,
the replay partition and the C fast path (through `bind`) use."""

from __future__ import annotations

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
DLT_RAW = 12  # what libpcap reports for LINKTYPE_RAW on most systems
DLT_RAW_OPENBSD = 14
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

SUPPORTED_LINKTYPES: dict[int, str] = {
    LINKTYPE_NULL: "NULL",
    LINKTYPE_ETHERNET: "ETHERNET",
    DLT_RAW: "RAW",
    DLT_RAW_OPENBSD: "RAW",
    LINKTYPE_RAW: "RAW",
    LINKTYPE_LOOP: "LOOP",
    LINKTYPE_LINUX_SLL: "LINUX_SLL",
    LINKTYPE_IPV4: "IPV4",
    LINKTYPE_IPV6: "IPV6",
    LINKTYPE_LINUX_SLL2: "LINUX_SLL2",
}

_OTHER_LINKTYPES: dict[int, str] = {
    3: "AX25",
    6: "IEEE802_5",
    7: "ARCNET_BSD",
    8: "SLIP",
    9: "PPP",
    10: "FDDI",
    50: "PPP_HDLC",
    51: "PPP_ETHER",
    100: "ATM_RFC1483",
    104: "C_HDLC",
    105: "IEEE802_11",
    107: "FRELAY",
    117: "PFLOG",
    119: "IEEE802_11_PRISM",
    127: "IEEE802_11_RADIOTAP",
    138: "APPLE_IP_OVER_IEEE1394",
    143: "DOCSIS",
    163: "IEEE802_11_AVS",
    187: "BLUETOOTH_HCI_H4",
    192: "PPI",
    195: "IEEE802_15_4_WITHFCS",
    201: "BLUETOOTH_HCI_H4_WITH_PHDR",
    220: "USB_LINUX_MMAPPED",
    227: "CAN_SOCKETCAN",
    239: "NFLOG",
    249: "USBPCAP",
    252: "WIRESHARK_UPPER_PDU",
    263: "NETANALYZER_TRANSPARENT",
    270: "NORDIC_BLE",
}


def file_linktype(linktype: int) -> int:
    """The link type a pcap file header carries for a link type libpcap reports (its DLT_): libpcap reports
    LINKTYPE_RAW as DLT_RAW (12, or 14 on OpenBSD); every other supported one is the same number."""
    return LINKTYPE_RAW if linktype in (DLT_RAW, DLT_RAW_OPENBSD) else linktype


def linktype_name(linktype: int) -> str:
    """The LINKTYPE_ name of a pcap link type without its prefix, e.g. 105 -> "IEEE802_11"."""
    name = SUPPORTED_LINKTYPES.get(linktype) or _OTHER_LINKTYPES.get(linktype)
    if name is None and 147 <= linktype <= 162:
        name = f"USER{linktype - 147}"
    return name or "unknown"


ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100, 0x9200)  # 802.1Q, 802.1ad (QinQ) and the older 0x9100 / 0x9200
# Encapsulations the decoder looks into (docs/detection.md "Encapsulations")
ETHERTYPE_MPLS = (0x8847, 0x8848)  # MPLS unicast, multicast: a label stack, then IP by its version nibble
ETHERTYPE_PPPOE_SESSION = 0x8864  # PPPoE session stage: a 6-byte header, then a PPP protocol number
PPP_IPV4, PPP_IPV6 = 0x0021, 0x0057
ETHERTYPE_TEB = 0x6558  # transparent Ethernet bridging: a GRE (or Geneve) packet carrying an Ethernet frame
ETHERTYPE_ERSPAN2, ETHERTYPE_ERSPAN3 = 0x88BE, 0x22EB  # ERSPAN type II (type I: without GRE's S flag), III
UDP_VXLAN, UDP_GENEVE = 4789, 6081  # destination ports
# GRE's first 16 bits (RFC 2784, RFC 2890, RFC 1701): checksum, routing, key and sequence number present, the version
GRE_C, GRE_R, GRE_K, GRE_S, GRE_VERSION = 0x8000, 0x4000, 0x2000, 0x1000, 0x0007
MAX_MPLS_LABELS = 8  # labels popped looking for the bottom of the stack: more is skipped (mpls_labels)
# Tunnels (IP-in-IP, GRE, VXLAN, Geneve) opened in one frame: more is skipped (encap_depth). A receiver opens them as
# deep as the packet goes (Linux's fallback tunl0: five nested IP-in-IP headers went past a bound of 4 unseen); a
# 1500-byte packet holds 73 IPv4 headers around an echo request. Deeper needs jumbo frames (documented).
MAX_ENCAPSULATIONS = 75
AF_INET = 2  # BSD loopback (NULL, LOOP) address families
AF_INET6 = frozenset((10, 24, 28, 30))  # Linux, NetBSD/OpenBSD, FreeBSD, macOS

PROTO_ICMP = 1
PROTO_IPIP = 4  # IPv4 in IP
PROTO_UDP = 17
PROTO_IPV6 = 41  # IPv6 in IP (6in4, and IPv6 in IPv6)
PROTO_GRE = 47
PROTO_ICMPV6 = 58
# IPv6 extension headers
HOP_BY_HOP = 0
ROUTING = 43
FRAGMENT = 44
AUTH = 51
DEST_OPTS = 60
