/* The upload's one-way reading of the queue beyond our shaper (issue 16):
 * helper/kernel/one_way.py reads it, docs/backends.md says what it is.
 *
 *   one_way_departed  on the uplink's tc egress (chadt_tc_out): a TCP data
 *                     packet the upload IFB sends on (its HTB let it go just
 *                     now; ingress_ifindex names the IFB) is noted: its
 *                     connection and end sequence (and those of a GSO
 *                     packet's first two segments) -> when, and our TSval.
 *                     (A GSO packet's earlier segments are not counted: the
 *                     modem's bucket passes them at once when it has tokens.)
 *   one_way_acked     on the uplink's tc ingress (chadt_tc_in): a pure ACK
 *                     with the timestamp option (first, or after two NOPs) whose number is a noted end,
 *                     sent once: the far end's TSval less when that segment
 *                     left, kept per connection as the least and a count
 *                     until the helper takes it (lookup and delete); the
 *                     segment then leaves one_way_segments.
 *
 * Both cost one array lookup a packet while the helper's estimation does not
 * ask (one_way_control.on == 0, or its lease ran out). IPv4 and IPv6; an IPv6 packet
 * whose TCP header does not follow the fixed header at once (any extension header:
 * hop-by-hop, routing, fragment, destination options, AH, ESP) is not read, nor an
 * IPv4 fragment or a BIG TCP super-packet (no length in its header); connections
 * without timestamps give nothing. The struct layouts are mirrored in
 * helper/kernel/layout.py.
 *
 * Built only with -DCHADT_ONE_WAY (program_build.one_way_flags): where a kernel
 * or compiler refuses the programs with it, the helper loads them without it
 * (datapath.py), the reading off and said why, the datapath whole.
 */
#ifndef CHADTHROTTLE_ONE_WAY_H
#define CHADTHROTTLE_ONE_WAY_H

#ifdef CHADT_ONE_WAY_UNCOMPILABLE
/* tests only (tests/helper/kernel/test_one_way_fallback.py): the build with the reading
 * fails in the compiler, as another clang's or header tree's failure would */
#error "built with CHADT_ONE_WAY_UNCOMPILABLE (a test's compile failure)"
#endif

#define ONE_WAY_SEGMENTS 16384 /* noted segments: ~1.5 s of a 1 Gbit/s upload in full frames */
#define ONE_WAY_CONNECTIONS 4096
#define ONE_WAY_ACK_MAX 120 /* a pure ACK's IP and TCP headers at most (60 + 60 bytes) */
#define ONE_WAY_NS_PER_TICK 1000000LL /* a far TS clock of 1 kHz (Linux, and RFC 7323's usual) */

struct one_way_control {
    __u32 on;          /* the helper's estimation reads (1) or not (0) */
    __u32 ifb_ifindex; /* the upload IFB whose sent-on packets left our shaper */
    __u64 until_ns;    /* bpf_ktime_get_ns() until which the helper's lease holds (it renews
                          it at each look): a killed helper's programs stop reading then */
};

/* A connection as its data leaves: our address and port, theirs. Addresses as
 * on the wire, IPv6's 16 bytes, an IPv4 one as ::ffff:a.b.c.d (RFC 4291's
 * mapped form: no IPv6 packet carries one, so the two never meet). */
struct one_way_conn {
    __u32 ours[4];
    __u32 theirs[4];
    __u16 our_port;
    __u16 their_port;
};

struct one_way_segment_key {
    struct one_way_conn conn;
    __u32 end; /* the sequence number after its last byte: what an ACK of all of it carries */
};

struct one_way_segment {
    __u64 left_ns; /* bpf_ktime_get_ns() as the IFB sent it on */
    __u32 tsval;   /* our TSval on it */
    __u32 state;   /* ONE_WAY_SENT, ONE_WAY_AGAIN (sent twice: which one is acked is not known);
                      read, it is taken out of the map */
};
#define ONE_WAY_SENT 1
#define ONE_WAY_AGAIN 2

struct one_way_reading {
    __s64 least_ns; /* the least (far TSval x 1 ms) - left_ns since the helper's last look;
                       a compare then a store, not atomic: two CPUs reading one connection's
                       ACKs at once may keep the higher of the two (count is atomic) */
    __u64 count;    /* ACKs read since then */
};

BPF_ARRAY(one_way_control, struct one_way_control, 1);
BPF_TABLE("lru_hash", struct one_way_segment_key, struct one_way_segment, one_way_segments, ONE_WAY_SEGMENTS);
BPF_TABLE("lru_hash", struct one_way_conn, struct one_way_reading, one_way_readings, ONE_WAY_CONNECTIONS);

/* What a TCP packet's headers say, read from its network header on. */
struct one_way_tcp {
    __u32 saddr[4], daddr[4]; /* as struct one_way_conn holds them */
    __u32 seq, ack, tsval, tsecr;
    __u16 sport, dport;
    __u32 payload;
    __u8 flags;
};

/* The timestamp option's TSval and TSecr (host order) where the stacks put it
 * on data and ACKs: first, or after two NOPs (Linux, the BSDs, macOS and
 * Windows all do); 0 when it is elsewhere or absent (not read). Not a walk
 * over the options: a bounded loop here made chadt_tc_out too complex for
 * the verifier ("the sequence of 8193 jumps is too complex"). */
static __always_inline int one_way_timestamps(__u8 *options, __u32 length, __u32 *tsval, __u32 *tsecr)
{
    __u32 value, echo;
    if (length >= 12 && options[0] == 1 && options[1] == 1 && options[2] == 8 && options[3] == 10) {
        __builtin_memcpy(&value, options + 4, 4);
        __builtin_memcpy(&echo, options + 8, 4);
    } else if (options[0] == 8 && options[1] == 10) {
        /* an opaque copy: clang would otherwise pick the offset by a select and
         * OR it into the stack pointer, which the verifier refuses */
        __u8 *first = options;
        asm volatile("" : "+r"(first));
        __builtin_memcpy(&value, first + 2, 4);
        __builtin_memcpy(&echo, first + 6, 4);
    } else {
        return 0;
    }
    *tsval = bpf_ntohl(value);
    *tsecr = bpf_ntohl(echo);
    return 1;
}

/* The packet's IP header: where its TCP header begins and the packet's length
 * from its IP header on (tcp's addresses filled in); 0 when it is not a TCP
 * packet read here (one_way.h's top says which are not). */
static __always_inline __u32 one_way_ip(struct __sk_buff *skb, struct one_way_tcp *tcp, __u32 *total)
{
    if (skb->protocol == bpf_htons(ETH_P_IP)) {
        struct iphdr ip;
        if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET) < 0)
            return 0;
        if (ip.protocol != IP_PROTO_TCP || (ip.frag_off & bpf_htons(0x3fff)))
            return 0;
        tcp->saddr[2] = tcp->daddr[2] = bpf_htonl(0xffff);
        tcp->saddr[3] = ip.saddr;
        tcp->daddr[3] = ip.daddr;
        *total = bpf_ntohs(ip.tot_len); /* 0 for a BIG TCP super-packet: not read */
        return ip.ihl * 4;
    }
    if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr ip6;
        if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET) < 0)
            return 0;
        /* extension headers are not walked (a loop here is what the verifier's budget
         * of chadt_tc_out cannot pay): such a packet is not read */
        if (ip6.nexthdr != IP_PROTO_TCP || !ip6.payload_len) /* 0: a BIG TCP super-packet */
            return 0;
        __builtin_memcpy(tcp->saddr, &ip6.saddr, 16);
        __builtin_memcpy(tcp->daddr, &ip6.daddr, 16);
        *total = sizeof(ip6) + bpf_ntohs(ip6.payload_len);
        return sizeof(ip6);
    }
    return 0;
}

/* The packet's TCP/IPv4 or TCP/IPv6 headers with a timestamp option; 0 for any other. */
static __always_inline int one_way_parse(struct __sk_buff *skb, struct one_way_tcp *tcp)
{
    __u32 total = 0;
    __u32 l4 = one_way_ip(skb, tcp, &total);
    __u8 header[20];
    if (l4 < 20 || bpf_skb_load_bytes_relative(skb, l4, header, sizeof(header), BPF_HDR_START_NET) < 0)
        return 0;
    __u32 doff = (header[12] >> 4) * 4;
    if (doff < 20 + 10 || total < l4 + doff)
        return 0;
    __u8 options[12] = {};
    __u32 length = doff - 20; /* 10 or more: doff checked above */
    int read = length >= 12 ? bpf_skb_load_bytes_relative(skb, l4 + 20, options, 12, BPF_HDR_START_NET)
                            : bpf_skb_load_bytes_relative(skb, l4 + 20, options, 10, BPF_HDR_START_NET);
    if (read < 0)
        return 0;
    if (!one_way_timestamps(options, length, &tcp->tsval, &tcp->tsecr))
        return 0;
    tcp->sport = (header[0] << 8) | header[1];
    tcp->dport = (header[2] << 8) | header[3];
    tcp->seq = ((__u32)header[4] << 24) | (header[5] << 16) | (header[6] << 8) | header[7];
    tcp->ack = ((__u32)header[8] << 24) | (header[9] << 16) | (header[10] << 8) | header[11];
    tcp->flags = header[13];
    tcp->payload = total - l4 - doff;
    return 1;
}

/* one_way_departed and one_way_acked (map method calls) are written in
 * datapath.c: bcc rewrites those only in the main source file. */

#endif
