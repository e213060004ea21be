/* ChadThrottle datapath: socket tagging, accounting and classification.
 *
 * Attached once at the cgroup v2 root (BPF_F_ALLOW_MULTI), so every socket on
 * the machine is seen; per packet the work is a few map lookups, independent
 * of how many applications are limited.
 *
 *   chadt_sock     cgroup/sock_create: record the creating process and
 *                  the application's limit slot on the new socket.
 *   chadt_egress   cgroup_skb egress: count, and steer packets of limited
 *                  applications into their HTB class via skb->priority.
 *   chadt_ingress  cgroup_skb ingress: count.
 *   chadt_sockops  sock_ops: when a limited application's TCP connection
 *                  opens, cap its pacing rate near the upload limit, so
 *                  TCP sends small packets at the limit instead of 64 KB
 *                  bursts into the shaper's queue, and clamp its receive
 *                  window to what the download limit needs, so the sender
 *                  keeps a short queue in the shaper instead of
 *                  overflowing it.
 *   chadt_tc_in    tc (cls_bpf) on an interface's ingress: find the
 *                  socket a packet is for and, when its application is
 *                  limited, return the class so the attached mirred
 *                  action redirects it to the IFB that shapes downloads.
 *   chadt_tc_in_l3 the same on an interface whose packets carry no
 *                  link-layer header (tun and WireGuard VPNs, PPP, modems).
 *   chadt_tc_out   tc (cls_bpf) on an interface's egress: match the
 *                  packets chadt_egress put into a limited class, so the
 *                  attached mirred action redirects them to the IFB that
 *                  shapes uploads (one per namespace, for every uplink).
 *
 * Every program passes every packet (fail open), except where a block or a
 * spent quota holds an application (struct slot_gate in maps.h, while the
 * helper renews its lease), and where the policer
 * holds a limited application (policer.h): the ebpf backend's only means, and
 * the tc backend's guard of the sum of every path (devices other than the
 * shaped uplinks, other network namespaces), which HTB on one device cannot
 * see.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include "maps.h"
#include "policer.h"

BPF_F_TABLE("sk_storage", int, struct sock_tag, socket_tags, 0,
            BPF_F_NO_PREALLOC | BPF_F_CLONE);
/* Which limit slot a process's new sockets get (kept by the helper), and
 * whose: struct owned_slot. */
BPF_HASH(slot_by_tgid, __u32, struct owned_slot, MAX_TRACKED_PROCESSES);
/* Which limit slot sockets created inside a cgroup get (app scopes). */
BPF_HASH(slot_by_cgroup, __u64, struct owned_slot, MAX_TRACKED_PROCESSES);
BPF_TABLE("lru_percpu_hash", struct traffic_key, struct traffic_counters,
          traffic, MAX_TRAFFIC_KEYS);
BPF_ARRAY(upload_pacing, struct slot_pacing, MAX_SLOTS);
BPF_ARRAY(socket_caps, struct socket_caps, MAX_SLOTS);
/* A divided limit's pacing per namespace (struct namespace_slot in maps.h):
 * the virtual queue of the namespace's share, and the pacing_bps of its TCP
 * sockets (socket_caps' for the rest). */
BPF_HASH(namespace_pacing, struct namespace_slot, struct slot_pacing, MAX_NAMESPACE_PACING);
BPF_HASH(namespace_socket_pacing, struct namespace_slot, __u32, MAX_NAMESPACE_PACING);

#define PACING_NSEC_PER_SEC 1000000000ULL /* the kernel headers have NSEC_PER_SEC (long) */
#define CGROUP_SKB_PASS 1
#define CGROUP_SKB_PASS_CN 3 /* pass, and tell TCP it met congestion */
#define CGROUP_SKB_DROP_CN 2 /* drop, and tell TCP it met congestion: it keeps the data */
#define CGROUP_SKB_DROP 0
#define TCP_ACK 0x10
#define TCP_ACK_RST_SYN_FIN 0x17

#define IP_PROTO_TCP 6
#define IP_PROTO_UDP 17

#ifdef CHADT_ONE_WAY /* the upload's one-way reading (issue 16): helper/kernel/program_build.py */
#include "one_way.h"
#endif

/* The IP header's length and the protocol after it (IPv6 extension headers
 * not followed), read from the packet's linear part; 0 when it is not there. */
static __always_inline int ip_header(void *data, void *data_end, __u32 *l3_len, __u8 *proto)
{
    __u8 *version = data;
    if ((void *)(version + 1) > data_end)
        return 0;
    if ((*version >> 4) == 4) {
        struct iphdr *ip = data;
        if ((void *)(ip + 1) > data_end)
            return 0;
        *l3_len = ip->ihl * 4;
        *proto = ip->protocol;
        return 1;
    }
    if ((*version >> 4) == 6) {
        struct ipv6hdr *ip6 = data;
        if ((void *)(ip6 + 1) > data_end)
            return 0;
        *l3_len = sizeof(*ip6);
        *proto = ip6->nexthdr;
        return 1;
    }
    return 0;
}

/* The IP + transport header bytes that each segment of a GSO/GRO packet
 * repeats, read straight from the packet: cgroup_skb data starts at the IP
 * header, and the stack builds a super-packet's headers in its linear part.
 * 0 when they are not there (then wire_bytes reads them the slow way). Three
 * bpf_skb_load_bytes calls instead cost 50-75 ns a packet (bench/overhead.py). */
static __always_inline __u32 gso_header_bytes(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    __u32 l3_len;
    __u8 proto;
    if (!ip_header(data, data_end, &l3_len, &proto))
        return 0;
    if (proto != IP_PROTO_TCP)
        return l3_len + 8;
    __u8 *data_offset = (__u8 *)data + (l3_len & 0x7f) + 12;
    if ((void *)(data_offset + 1) > data_end)
        return 0;
    return l3_len + (*data_offset >> 4) * 4;
}

/* Bytes on the wire at L3 for an skb that may be a GSO/GRO super-packet. */
static __always_inline __u64 wire_bytes(struct __sk_buff *skb, __u32 l3_offset)
{
    __u32 segs = skb->gso_segs;
    __u64 len = skb->len - l3_offset;
    if (segs <= 1)
        return len;
    if (l3_offset == 0) {
        __u32 headers = gso_header_bytes(skb);
        if (headers)
            return len + (__u64)(segs - 1) * headers;
    }
    __u8 first = 0;
    if (bpf_skb_load_bytes(skb, l3_offset, &first, 1) < 0)
        return len;
    __u32 l3_len;
    __u8 proto = 0;
    if ((first >> 4) == 4) {
        l3_len = (first & 0x0f) * 4;
        bpf_skb_load_bytes(skb, l3_offset + 9, &proto, 1);
    } else if ((first >> 4) == 6) {
        l3_len = 40;
        bpf_skb_load_bytes(skb, l3_offset + 6, &proto, 1);
    } else {
        return len;
    }
    __u32 l4_len = 8;
    if (proto == IP_PROTO_TCP) {
        __u8 data_offset = 0;
        bpf_skb_load_bytes(skb, l3_offset + l3_len + 12, &data_offset, 1);
        l4_len = (data_offset >> 4) * 4;
    }
    return len + (__u64)(segs - 1) * (l3_len + l4_len);
}

/* A socket's tag. An MPTCP connection's packets leave and arrive on its
 * subflows, TCP sockets the kernel makes itself (chadt_sock never runs for
 * them: no tag), so a subflow without one has its connection's, the socket
 * the application made (MPTCP_PARENT_TAGS: program_build.mptcp_flags). Until
 * 2026-12-05 an MPTCP upload limited to 1 MiB/s ran at 1,410 times the limit
 * and was listed at 0 B/s. The cast costs a helper call only where the
 * socket has no tag of its own. */
static __always_inline struct sock_tag *tag_of_socket(struct bpf_sock *sk)
{
    struct sock_tag *tag = socket_tags.sk_storage_get(sk, 0, 0);
#ifdef MPTCP_PARENT_TAGS
    if (!tag) {
        struct mptcp_sock *connection = bpf_skc_to_mptcp_sock(sk);
        if (connection)
            tag = socket_tags.sk_storage_get(connection, 0, 0);
    }
#endif
    return tag;
}

/* The packet's socket's tag. bpf_sk_storage_get gives none for a socket that
 * is not a full one (request, time-wait) itself: a bpf_sk_fullsock call first
 * would be one helper call more per packet for the same answer. */
static __always_inline struct sock_tag *tag_of(struct __sk_buff *skb)
{
    struct bpf_sock *sk = skb->sk;
    if (!sk)
        return 0;
    return tag_of_socket(sk);
}

/* The tc backend's upload path, for a slot it shapes (it sets the slot's
 * pacing with the class): the packet goes to the slot's HTB class, and the
 * slot's virtual queue advances by it; CN once that is too long. A divided
 * slot's packet advances its namespace's virtual queue, at that namespace's
 * share: its class holds the share, and the slot's queue at the whole limit
 * let a namespace offer up to all of it. */
static __always_inline int shape_upload(struct __sk_buff *skb, __u32 slot, __u64 netns_cookie, __u64 bytes)
{
    struct slot_pacing *pacing = upload_pacing.lookup(&slot);
    if (!pacing || !pacing->rate_bps)
        return CGROUP_SKB_PASS;
    skb->priority = (HTB_MAJOR << 16) | slot;
    if (pacing->divided) {
        struct namespace_slot key = {};
        key.netns_cookie = netns_cookie;
        key.app_slot = slot;
        struct slot_pacing *share = namespace_pacing.lookup(&key);
        if (share && share->rate_bps)
            pacing = share;
    }
    __u64 now = bpf_ktime_get_ns();
    __u64 rate = pacing->rate_bps;
    __u64 cost_ns = bytes * PACING_NSEC_PER_SEC / rate;
    int verdict = CGROUP_SKB_PASS;
    bpf_spin_lock(&pacing->lock);
    __u64 start = pacing->virtual_time_ns > now ? pacing->virtual_time_ns : now;
    pacing->virtual_time_ns = start + cost_ns;
    if (start - now > pacing->cn_queue_ns) {
        pacing->cn_marks += 1;
        verdict = CGROUP_SKB_PASS_CN;
    }
    bpf_spin_unlock(&pacing->lock);
    return verdict;
}

/* The ebpf backend's policer of a slot and direction, or 0 when the slot is
 * not policed there (then the tc backend's path applies). */
static __always_inline struct slot_policer *active_policer(__u32 slot, __u32 direction)
{
    __u32 key = policer_key(slot, direction);
    struct slot_policer *policer = policers.lookup(&key);
    return policer && policer->active ? policer : 0;
}

/* Block and quota (struct slot_gate in maps.h): one array lookup, only for
 * the sockets of applications with a rule. The gate of a slot and direction
 * with a block or a quota whose lease holds, or 0 (no rule, or the helper is
 * gone: traffic fails open). */
BPF_F_TABLE("array", __u32, struct slot_gate, slot_gates, POLICER_ENTRIES, BPF_F_MMAPABLE);

static __always_inline struct slot_gate *closed_gate(__u32 slot, __u32 direction)
{
    __u32 key = policer_key(slot, direction);
    struct slot_gate *gate = slot_gates.lookup(&key);
    if (!gate || !gate->flags || gate->lease_until_ns < bpf_ktime_get_ns())
        return 0;
    return gate;
}

/* A block, or a quota spent: the packet does not pass. The last packet that
 * found budget left passes whole, so a quota ends at most one packet per
 * CPU sending at once past its bytes. */
static __always_inline int gate_refuses(struct slot_gate *gate)
{
    return (gate->flags & GATE_BLOCK) ||
           ((gate->flags & GATE_QUOTA) && gate->quota_used_bytes >= gate->quota_allowance_bytes);
}

/* A blocked upload's packet. TCP's is dropped as if lost: TCP keeps the data,
 * its timers back off, and it sends again after the block. (With a congestion
 * notice, a connection with nothing in flight probed every 0.5 s without
 * backing off and was reset after tcp_retries2 probes: 7.5 s into a block.)
 * Any other's with a congestion notice: a UDP send sees ENOBUFS, not EPERM. */
static __always_inline int refuse_upload(struct __sk_buff *skb)
{
    struct bpf_sock *sk = skb->sk;
    if (sk)
        sk = bpf_sk_fullsock(sk);
    return sk && sk->protocol == IP_PROTO_TCP ? CGROUP_SKB_DROP : CGROUP_SKB_DROP_CN;
}

/* A TCP segment that only acknowledges (no payload; no SYN, FIN or RST): it
 * carries nothing, and the other direction's TCP waits for it, so a block of
 * one direction lets it through (a block of uploads stopped every TCP
 * download with them, and a block of downloads every upload). */
static __always_inline int pure_ack(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    __u32 l3_len;
    __u8 proto;
    if (!ip_header(data, data_end, &l3_len, &proto))
        return 0;
    if (proto != IP_PROTO_TCP)
        return 0;
    __u8 *offset_and_flags = (__u8 *)data + (l3_len & 0x7f) + 12; /* data offset, then the flags */
    if ((void *)(offset_and_flags + 2) > data_end)
        return 0;
    __u32 headers = (l3_len & 0x7f) + (offset_and_flags[0] >> 4) * 4;
    return skb->len == headers && (offset_and_flags[1] & TCP_ACK_RST_SYN_FIN) == TCP_ACK;
}

static __always_inline void charge_quota(struct slot_gate *gate, __u64 bytes)
{
    if (gate->flags & GATE_QUOTA)
        __sync_fetch_and_add(&gate->quota_used_bytes, bytes);
}

/* Per-CPU counter slots (struct counter_slot in maps.h), mmapped by the helper. */
BPF_F_TABLE("array", __u32, struct counter_slot, counter_slots, COUNTER_SLOT_CPUS * COUNTER_SLOTS_PER_CPU,
            BPF_F_MMAPABLE);
/* The slot states SLOT_FREE, SLOT_CLAIMING, SLOT_HELD: -D (layout.py). */
#define SLOT_PROBES 2 /* the key's home slot and the next */

static __always_inline __u32 slot_home(struct traffic_key *key)
{
    __u32 mixed = key->owner_tgid ^ (key->ifindex << 16) ^ (__u32)key->netns_cookie ^ (__u32)(key->netns_cookie >> 32) ^
                  ((__u32)key->owner_start << 8);
    return (mixed * 2654435761u) >> (32 - COUNTER_SLOT_BITS);
}

/* This CPU's counters of key in a slot, claiming a free one; 0 when its
 * slots hold other keys, or one is being claimed by a program this run
 * interrupted. The claim writes the key before the state says it is held. */
static __always_inline struct traffic_counters *slot_counters(struct traffic_key *key)
{
    __u32 first = bpf_get_smp_processor_id() * COUNTER_SLOTS_PER_CPU;
    __u32 home = slot_home(key);
#pragma unroll
    for (int probe = 0; probe < SLOT_PROBES; probe++) {
        __u32 index = first + ((home + probe) & (COUNTER_SLOTS_PER_CPU - 1));
        struct counter_slot *slot = counter_slots.lookup(&index);
        if (!slot)
            return 0;
        __u64 state = *(volatile __u64 *)&slot->state;
        if (state == SLOT_HELD && slot->netns_cookie == key->netns_cookie && slot->owner_tgid == key->owner_tgid &&
            slot->ifindex == key->ifindex && slot->owner_start == key->owner_start)
            return (struct traffic_counters *)&slot->rx_bytes;
        if (state == SLOT_FREE && __sync_val_compare_and_swap(&slot->state, SLOT_FREE, SLOT_CLAIMING) == SLOT_FREE) {
            slot->netns_cookie = key->netns_cookie;
            slot->owner_tgid = key->owner_tgid;
            slot->ifindex = key->ifindex;
            slot->owner_start = key->owner_start;
            slot->rx_bytes = 0;
            slot->rx_packets = 0;
            slot->tx_bytes = 0;
            slot->tx_packets = 0;
            __sync_lock_test_and_set(&slot->state, SLOT_HELD);
            return (struct traffic_counters *)&slot->rx_bytes;
        }
    }
    return 0;
}

static __always_inline __u64 count(struct sock_tag *tag, struct __sk_buff *skb, int egress)
{
    struct traffic_key key = {};
    /* the socket's namespace is the packet's device's at both hooks */
    key.netns_cookie = tag && tag->netns_cookie ? tag->netns_cookie : bpf_get_netns_cookie(skb);
    key.owner_tgid = tag ? tag->owner_tgid : 0;
    key.owner_start = tag ? tag->owner_start : 0;
    key.ifindex = skb->ifindex;
    __u64 bytes = wire_bytes(skb, 0);
    struct traffic_counters *counters = slot_counters(&key);
    if (!counters) {
        struct traffic_counters zero = {};
        counters = traffic.lookup_or_try_init(&key, &zero);
    }
    if (!counters)
        return bytes;
    __u32 packets = skb->gso_segs > 1 ? skb->gso_segs : 1;
    if (egress) {
        counters->tx_bytes += bytes;
        counters->tx_packets += packets;
    } else {
        counters->rx_bytes += bytes;
        counters->rx_packets += packets;
    }
    return bytes;
}

/* Processes the helper was told about: each process's first socket sends
 * its tgid, start and cgroup once, so the helper can tell whose it is while
 * it still runs, however short-lived, or from its app scope after it exited.
 * By tgid, holding the start: a new process under a pid handed out again is
 * announced, whether or not the helper saw the old one exit. */
BPF_TABLE("lru_hash", __u32, __u64, announced_owners, MAX_TRACKED_PROCESSES);
BPF_RINGBUF_OUTPUT(new_owners, 16);
/* An announcement the ring buffer (64 KiB: 2,048 of them) had no room for is
 * kept in unheard_owners until the helper takes it; owner_drops counts them
 * ([OWNER_DROPS_RING]) and those unheard_owners had no room for either
 * ([OWNER_DROPS_LOST]): those are not marked announced, so the process's next
 * socket tries again, and the helper looks for their bytes' owners itself. A
 * plain hash, not an LRU: an LRU would push out an unheard one silently. */
#define MAX_UNHEARD_OWNERS 8192
BPF_HASH(unheard_owners, struct unheard_owner, __u64, MAX_UNHEARD_OWNERS);
BPF_ARRAY(owner_drops, __u64, 2);

static __always_inline void count_owner_drop(__u32 which)
{
    __u64 *drops = owner_drops.lookup(&which);
    if (drops)
        __sync_fetch_and_add(drops, 1);
}

static __always_inline void announce(__u32 tgid, __u64 start, __u64 cgroup_id)
{
    __u64 *announced = announced_owners.lookup(&tgid);
    if (announced && *announced == start)
        return;
    struct owner_event event = {};
    event.cgroup_id = cgroup_id;
    event.tgid = tgid;
    event.start = start;
    /* marked once told: two sockets at once on two CPUs may both tell it
     * (the helper takes a process announced again as it is) */
    if (new_owners.ringbuf_output(&event, sizeof(event), 0) == 0) {
        announced_owners.update(&tgid, &start);
        return;
    }
    struct unheard_owner unheard = {};
    unheard.start = start;
    unheard.tgid = tgid;
    int kept = unheard_owners.update(&unheard, &cgroup_id) == 0;
    if (kept) /* counted after it is kept: a helper that saw the count finds it */
        announced_owners.update(&tgid, &start);
    else
        count_owner_drop(OWNER_DROPS_LOST);
    count_owner_drop(OWNER_DROPS_RING);
}

/* When the current process started, in clock ticks after boot: /proc/PID/stat's
 * starttime (the thread group leader's start_boottime; an exec by another
 * thread takes the leader's over). The two offsets in struct task_struct
 * come from the running kernel's BTF (helper/kernel/task_offsets.py: the
 * headers bcc compiles with lay it out otherwise); 0 when they are not known
 * or the read fails. Once per socket, not per packet. */
/* bpf_probe_read_kernel by its own name: where bcc does not find the helper in
 * the kernel (under the packaged unit's hardening, /proc/kallsyms hidden) it
 * adds "#define bpf_probe_read_kernel bpf_probe_read", which the kernel refuses
 * in a cgroup program, and the helper would not start. */
static long (*read_kernel)(void *dst, __u32 size, const void *src) =
    (void *)BPF_FUNC_probe_read_kernel;

static __always_inline __u64 process_start(void)
{
#if TASK_GROUP_LEADER_OFFSET && TASK_START_BOOTTIME_OFFSET
    char *task = (char *)bpf_get_current_task();
    char *leader = 0;
    __u64 start_ns = 0;
    if (read_kernel(&leader, sizeof(leader), task + TASK_GROUP_LEADER_OFFSET) || !leader)
        return 0;
    if (read_kernel(&start_ns, sizeof(start_ns), leader + TASK_START_BOOTTIME_OFFSET))
        return 0;
    return start_ns / PROCESS_START_TICK_NS;
#else
    return 0;
#endif
}

int chadt_sock(struct bpf_sock *sk)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u32 tgid = pid_tgid >> 32;
    __u64 cgroup_id = bpf_get_current_cgroup_id();
    struct sock_tag *tag = socket_tags.sk_storage_get(sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
    if (!tag)
        return 1;
    tag->owner_tgid = tgid;
    tag->owner_start = process_start();
    tag->netns_cookie = bpf_get_netns_cookie(sk);
    struct owned_slot *slot = slot_by_tgid.lookup(&tgid);
    if (slot && slot->start && slot->start != tag->owner_start)
        slot = 0; /* an exited process's, whose pid the kernel handed out again */
    if (!slot)
        slot = slot_by_cgroup.lookup(&cgroup_id);
    tag->app_slot = slot && (slot->uid == ANY_UID || slot->uid == (__u32)bpf_get_current_uid_gid())
                        ? slot->app_slot : 0;
    announce(tgid, tag->owner_start, cgroup_id);
    return 1;
}

/* A limited application's pure ACKs pass its block, policer and upload class
 * (its HTB class queue and pacing): they are its downloads' acknowledgements,
 * and behind its limited upload they came seconds late, so its downloads fell
 * to a hundredth of their rate. They are counted (and charged to a quota) as
 * its upload bytes all the same; the limit holds everything else
 * (docs/backends.md, "A limited upload leaves the application's downloads
 * alone"). Downloads the same way: chadt_ingress, classify_ingress. */
int chadt_egress(struct __sk_buff *skb)
{
    struct sock_tag *tag = tag_of(skb);
    int verdict = CGROUP_SKB_PASS;
    int ack = tag && tag->app_slot && pure_ack(skb);
    struct slot_gate *gate = tag && tag->app_slot ? closed_gate(tag->app_slot, POLICE_UP) : 0;
    if (gate && gate_refuses(gate) && !ack)
        return refuse_upload(skb);
    struct slot_policer *policer = tag && tag->app_slot && !ack ? active_policer(tag->app_slot, POLICE_UP) : 0;
    if (policer) { /* a refused packet is sent again later: count it then */
        verdict = police_egress(policer, skb, wire_bytes(skb, 0));
        if (!(verdict & CGROUP_SKB_PASS))
            return verdict;
    }
    __u64 bytes = count(tag, skb, 1);
    if (gate)
        charge_quota(gate, bytes);
    if (!tag || !tag->app_slot || ack)
        return verdict;
    return verdict | shape_upload(skb, tag->app_slot & 0xffff, tag->netns_cookie, bytes);
}

int chadt_ingress(struct __sk_buff *skb)
{
    struct sock_tag *tag = tag_of(skb);
    int ack = tag && tag->app_slot && pure_ack(skb); /* as in chadt_egress */
    struct slot_gate *gate = tag && tag->app_slot ? closed_gate(tag->app_slot, POLICE_DOWN) : 0;
    if (gate && gate_refuses(gate) && !ack)
        return 0; /* dropped, not reset: the sender retransmits after the block */
    struct slot_policer *policer = tag && tag->app_slot && !ack ? active_policer(tag->app_slot, POLICE_DOWN) : 0;
    int verdict = 1;
    /* the ebpf backend: what it drops never reaches the application */
    if (policer)
        verdict = police_ingress(policer, skb, wire_bytes(skb, 0));
    if (verdict) {
        __u64 bytes = count(tag, skb, 0);
        if (gate)
            charge_quota(gate, bytes);
    }
    return verdict;
}

#define SOL_SOCKET 1
#define SOL_TCP 6
#define TCP_WINDOW_CLAMP 10
#define AF_INET 2
/* SO_MAX_PACING_RATE, TCP_IPV4_HEADERS and TCP_IPV6_HEADERS (IP and TCP header,
 * with the timestamp option, of a full segment), WINDOW_QUEUE_US,
 * UNKNOWN_RTT_US, MAX_RTT_US, UNCLAMPED_WINDOW: -D from socket_tagging.py. */

static __always_inline int carries_ipv4(struct bpf_sock_ops *skops)
{
    return skops->family == AF_INET ||
           (skops->remote_ip6[0] == 0 && skops->remote_ip6[1] == 0 && skops->remote_ip6[2] == bpf_htonl(0xffff));
}

/* The same as payload_pacing_bps in socket_tagging.py. */
static __always_inline void cap_pacing(struct bpf_sock_ops *skops, __u32 wire_bps)
{
    __u64 mss = skops->mss_cache;
    __u64 headers = carries_ipv4(skops) ? TCP_IPV4_HEADERS : TCP_IPV6_HEADERS;
    int value = mss ? (__u64)wire_bps * mss / (mss + headers) : wire_bps;
    bpf_setsockopt(skops, SOL_SOCKET, SO_MAX_PACING_RATE, &value, sizeof(value));
}

/* Only a change: kernels before 6.7 ("tcp: fix mid stream window clamp") reset
 * rcv_ssthresh on every TCP_WINDOW_CLAMP, which would stop the window growing. */
static __always_inline void set_window_clamp(struct bpf_sock_ops *skops, int value)
{
    int clamp = 0;
    if (bpf_getsockopt(skops, SOL_TCP, TCP_WINDOW_CLAMP, &clamp, sizeof(clamp)) == 0 && clamp == value)
        return;
    bpf_setsockopt(skops, SOL_TCP, TCP_WINDOW_CLAMP, &value, sizeof(value));
}

/* The same as receive_window_bytes in socket_tagging.py, from the minimum RTT
 * (the handshake's at first), as user space reads it (tcpi_min_rtt). */
static __always_inline void clamp_window(struct bpf_sock_ops *skops, __u32 wire_bps)
{
    __u64 rtt_us = skops->rtt_min;
    if (!rtt_us || rtt_us > MAX_RTT_US)
        rtt_us = UNKNOWN_RTT_US;
    __u64 window = (__u64)wire_bps * (rtt_us + WINDOW_QUEUE_US) / 1000000;
    set_window_clamp(skops, window < UNCLAMPED_WINDOW ? window : UNCLAMPED_WINDOW);
}

/* A download limit's window clamp for the MPTCP subflows of a process's
 * connections (by the owner_tgid of their tags) until until_ns
 * (bpf_ktime_get_ns), written by the helper (datapath.clamp_windows) before
 * it tags them: as for TCP, the windows come down first and the limit's
 * class follows once the old ones are spent, else the old window overflows
 * the leaf. After until_ns the slot's caps hold them (hold_subflow). */
struct window_first {
    __u64 window_bps;
    __u64 until_ns;
};
BPF_TABLE("lru_hash", __u32, struct window_first, windows_first, 1024);

#ifdef MPTCP_PARENT_TAGS
/* The download limit chadt_sockops last clamped an MPTCP subflow's window
 * for (wire bytes/s; 0: not clamped), so that it lifts only its own clamp. */
BPF_F_TABLE("sk_storage", int, __u32, subflow_clamps, 0, BPF_F_NO_PREALLOC);

/* An MPTCP subflow's window, clamped for its connection's download limit
 * (tag: the connection's). The helper cannot reach a subflow from user
 * space: the application's socket is the connection, which refuses
 * TCP_WINDOW_CLAMP (ENOPROTOOPT), and a limit usually lands on a connection
 * already open. So every subflow of a tagged connection runs this before
 * each packet it sends, from when it is established on, limited or not: a
 * limit set later clamps it at its next packet, one that goes is lifted at
 * its next packet (its flag stays on). The cost falls on MPTCP traffic only.
 * Its pacing is not capped: capped as a TCP socket's, an MPTCP upload's
 * limit settled at the shaper after 1.9-3.7 s in 6 of 12 runs at load 7-9,
 * uncapped in 0.24-1.26 s in all 6 (HTB's queue rides out the sender's stalls), and
 * held no packet fewer (0 leaf drops either way; docs/benchmarks.md). */
static __always_inline int hold_subflow(struct bpf_sock_ops *skops, struct bpf_sock *sk,
                                        struct sock_tag *tag)
{
    __u32 op = skops->op;
    if (!tag || op == BPF_SOCK_OPS_TCP_CONNECT_CB)
        return 1;
    if (op != BPF_SOCK_OPS_HDR_OPT_LEN_CB)
        bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
    __u32 slot = tag->app_slot & 0xffff;
    struct socket_caps *caps = slot ? socket_caps.lookup(&slot) : 0;
    __u32 window_bps = caps ? caps->window_bps : 0;
    if (!window_bps) {
        __u32 owner = tag->owner_tgid;
        struct window_first *first = windows_first.lookup(&owner);
        if (first && bpf_ktime_get_ns() < first->until_ns)
            window_bps = first->window_bps;
    }
    __u32 *clamped = subflow_clamps.sk_storage_get(sk, 0, window_bps ? BPF_SK_STORAGE_GET_F_CREATE : 0);
    if (!clamped)
        return 1; /* never clamped, nothing to clamp */
    if (window_bps)
        clamp_window(skops, window_bps);
    else if (*clamped)
        set_window_clamp(skops, UNCLAMPED_WINDOW);
    *clamped = window_bps;
    return 1;
}
#endif

/* Pacing: when a limited application's TCP connection opens (sockets opened
 * before a limit are capped by the helper from user space). The window clamp:
 * also before every packet the connection sends (its ACKs carry the window)
 * while its application has a download limit, because the kernel moves
 * window_clamp itself as it sizes the receive buffer: right after the
 * connection opens, and whenever autotuning grows the buffer. An unchanged
 * clamp costs a read. The header-option hook is the one that
 * runs for every packet sent; it reserves no option space. A socket with no
 * slot here is not ours (never limited by this helper, or another helper's:
 * every helper's program runs on every socket), so it is left alone: lifting
 * the clamp and the flag there undid the other helper's clamp. An MPTCP
 * subflow (no tag of its own) is clamped by its connection's (hold_subflow). */
int chadt_sockops(struct bpf_sock_ops *skops)
{
    __u32 op = skops->op;
    if (op != BPF_SOCK_OPS_TCP_CONNECT_CB && op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
        op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_HDR_OPT_LEN_CB)
        return 1;
    struct bpf_sock *sk = skops->sk;
    if (!sk)
        return 1;
    struct sock_tag *tag = socket_tags.sk_storage_get(sk, 0, 0);
#ifdef MPTCP_PARENT_TAGS
    if (!tag) {
        struct mptcp_sock *connection = bpf_skc_to_mptcp_sock(sk);
        if (connection)
            return hold_subflow(skops, sk, socket_tags.sk_storage_get(connection, 0, 0));
    }
#endif
    __u32 slot = tag ? tag->app_slot & 0xffff : 0;
    struct socket_caps *caps = slot ? socket_caps.lookup(&slot) : 0;
    __u32 window_bps = caps ? caps->window_bps : 0;
    if (op == BPF_SOCK_OPS_HDR_OPT_LEN_CB) {
        if (window_bps)
            clamp_window(skops, window_bps);
        else if (slot) { /* the limit went: lift the clamp (the helper may not know the socket), no more calls */
            set_window_clamp(skops, UNCLAMPED_WINDOW);
            bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
        }
        return 1;
    }
    if (!caps)
        return 1;
    if (caps->pacing_bps) { /* a divided limit: at its share in the socket's namespace */
        struct namespace_slot key = {};
        key.netns_cookie = tag->netns_cookie;
        key.app_slot = slot;
        __u32 *share = namespace_socket_pacing.lookup(&key);
        cap_pacing(skops, share && *share ? *share : caps->pacing_bps);
    }
    if (window_bps && op != BPF_SOCK_OPS_TCP_CONNECT_CB) {
        clamp_window(skops, window_bps);
        bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
    }
    return 1;
}

/* Forwarded flows (issue 16): an application whose sockets live in another
 * network namespace (a container behind a veth, NATed out of the uplink).
 * Its packet reaches the uplink without its socket (ip_rcv orphans it) and
 * with skb->priority reset by forwarding, so its class is carried from where
 * the socket is still attached: the ingress hook of the veth by which it
 * enters this namespace (classify_ingress) writes the socket's slot into
 * skb->tc_index, which neither forwarding nor NAT touch and no qdisc or
 * filter of this kernel reads (dsmark and tcindex are gone). The uplink's
 * egress hook (chadt_tc_out) sees it after SNAT: it classes the packet and
 * notes the reply's tuple, as the uplink's ingress will see it before
 * conntrack undoes the NAT, so the download is classed there by that tuple.
 * Only for a slot the helper's own link tree holds a class of
 * (forwarded_classes, written by helper/kernel/tc_shaper.py); per slot, the
 * packets so classed, each direction (forwarded_matches), which the listing
 * reads to say a container's priority is in force. A tc_index is taken only
 * with the slot's token in skb->hash (forwarded_tokens, below): what an IFB
 * in the container's namespace sends on skips the veth's ingress hook, so
 * the container's own egress hook carries the slot then (carry_token). */
#define FORWARDED_UP 1
#define FORWARDED_DOWN 2
struct forwarded_flow {
    __u32 remote[4]; /* as the uplink sees it: after SNAT, before de-NAT */
    __u32 local[4];
    __u16 remote_port;
    __u16 local_port;
    __u8 proto;
    __u8 family;
    __u16 pad;
};
struct forwarded_count {
    __u64 up_packets;
    __u64 down_packets;
};
/* A noted flow: its slot, and the namespace that noted it (the helper's):
 * every namespace's ingress hook looks tuples up, and a routed container's
 * own ingress saw the helper's noted tuple for a packet of no socket there
 * (its socket closed) and sent it to its own download IFB with a class that
 * IFB did not hold, counted a second time (hole 4 of the review). */
struct forwarded_note {
    __u32 slot;
    __u32 pad;
    __u64 netns_cookie;
};
BPF_TABLE("lru_hash", struct forwarded_flow, struct forwarded_note, forwarded_flows, 65536);
BPF_ARRAY(forwarded_classes, __u32, MAX_SLOTS);
BPF_ARRAY(forwarded_matches, struct forwarded_count, MAX_SLOTS);
/* A classed slot's token (issue 16, carry22): a random nonzero 32-bit value the
 * helper draws (secrets) when it starts classing the slot's forwarded flows,
 * 0 while it does not; entry 0 (no slot's): the cookie of the namespace whose
 * link tree classes them (the helper's). A forwarded packet's tc_index is
 * taken for a slot only with the slot's token in skb->hash. tc_index alone
 * could be forged: a packet an IFB in the container's namespace sent on keeps
 * tc_skip_classify through the veth, the host end's ingress (carry_slot) is
 * skipped, and the container's own tc_index reached the uplink (600 of 600
 * packets into another application's class). Our programs write the token
 * where they see the socket: carry_slot at the host end, and chadt_tc_out in
 * the container's namespace as it sends a limited packet to that namespace's
 * upload IFB (whose packets skip carry_slot: a container's application with a
 * priority and an upload limit was classed default both ways). skb->hash
 * survives that IFB, the veth, forwarding and NAT (bpf_set_hash, kernel 6.18,
 * 2026-12-06: 100 of 100 UDP, 45 of 45 TCP GSO packets). No container can
 * read our maps; it can read skb->hash of its own applications' packets, so
 * it can forge the slot of an application that sends from its namespace,
 * not another's. */
BPF_ARRAY(forwarded_tokens, __u64, MAX_SLOTS);

/* The token of a slot classed here, 0: none. */
static __always_inline __u32 forwarded_token(__u32 slot)
{
    __u64 *token = forwarded_tokens.lookup(&slot);
    return token ? (__u32)*token : 0;
}

static __always_inline __u32 forwarded_class(__u32 slot, __u32 direction)
{
    __u32 *classes = forwarded_classes.lookup(&slot);
    return classes && (*classes & direction);
}

static __always_inline void forwarded_matched(__u32 slot, __u32 direction)
{
    struct forwarded_count *count = forwarded_matches.lookup(&slot);
    if (!count)
        return;
    if (direction == FORWARDED_UP)
        __sync_fetch_and_add(&count->up_packets, 1);
    else
        __sync_fetch_and_add(&count->down_packets, 1);
}

/* A TCP segment that only acknowledges, its TCP header at l4 of an IP packet
 * of ip_bytes from l3 (offsets from the network header when relative). */
static __always_inline int tcp_pure_ack(struct __sk_buff *skb, __u32 l3, __u32 l4, __u32 ip_bytes, int relative)
{
    __u8 offset_and_flags[2];
    int read = relative ? bpf_skb_load_bytes_relative(skb, l4 + 12, offset_and_flags, 2, BPF_HDR_START_NET)
                        : bpf_skb_load_bytes(skb, l4 + 12, offset_and_flags, 2);
    return read == 0 && ip_bytes == l4 - l3 + (offset_and_flags[0] >> 4) * 4 &&
           (offset_and_flags[1] & TCP_ACK_RST_SYN_FIN) == TCP_ACK;
}

/* Whether any slot's forwarded flows are classed (forwarded_classes[0], no
 * slot's: Datapath.set_forwarded_classes): while the helper's link tree
 * holds a class (a priority or a limit under a link). Otherwise a socketless
 * packet on the uplinks' egress costs this one lookup, nothing more: until
 * 2026-12-05 a container's packet with a slot (a limit its own namespace
 * holds) paid carried_by's reads and the flow lookup all the same: 338 ns a
 * run of chadt_tc_out against 74 without a slot, now 69 and 69; and under a
 * link, for a slot classed nowhere here, 250 against 156, now 158 and 162
 * (bench/forwarded_ns.py, load 6-15). */
static __always_inline int forwarded_in_use(void)
{
    __u32 none = 0;
    __u32 *any = forwarded_classes.lookup(&none);
    return any && *any;
}

/* The devices by which a forwarded packet's tc_index is ours: those whose
 * ingress runs our hook (carry_slot) in the helper's own namespace, written by
 * helper/kernel/tc_shaper.py as it makes and removes its hooks (the shapers
 * of other namespaces write none: forwarded flows are classed in the
 * helper's link tree only). Any tc filter's match writes tc_index too
 * (TC_H_MIN of its classid; Cilium keeps flags there), so a packet that came
 * in by a device we do not hook (a LAN device with someone's u32 'classid
 * 1:7') had its tc_index taken for a slot of ours: another party's flow
 * classed and counted as a user's application. The upload IFB is noted as
 * well: what it sends on (all of it under a link: the catch-all) comes to the
 * uplink's egress a second time, by the IFB, judged already the first time.
 * Keyed by the namespace's cookie with the ifindex, as ifindexes are per
 * namespace (another namespace's shaper runs these programs too). A
 * forwarded packet has no socket, so bpf_get_netns_cookie(skb) would give
 * init_net's: the cookie is read from the device (skb->dev->nd_net), with
 * the three offsets (sk_buff's dev too) from the kernel's BTF
 * (helper/kernel/task_offsets.py); without them, 0, and no tc_index is
 * trusted (no forwarded flow classed). Values:
 * CARRIED_BY_HOOK, CARRIED_BY_IFB (helper/kernel/layout.py). */
struct carrying_device {
    __u64 netns_cookie;
    __u32 ifindex;
    __u32 pad;
};
BPF_HASH(carrying_devices, struct carrying_device, __u8, 4096);

static __always_inline __u64 device_netns_cookie(struct __sk_buff *skb)
{
#if SKB_DEV_OFFSET && NET_DEVICE_ND_NET_OFFSET && NET_COOKIE_OFFSET
    char *dev = 0, *net = 0, *base = (char *)skb;
    __u64 cookie = 0;
    /* an opaque copy: otherwise clang may keep skb + SKB_DEV_OFFSET and read
     * the packet's own fields through it later, which the verifier refuses
     * ("dereference of modified ctx ptr") */
    asm volatile("" : "+r"(base));
    if (read_kernel(&dev, sizeof(dev), base + SKB_DEV_OFFSET) || !dev)
        return 0;
    if (read_kernel(&net, sizeof(net), dev + NET_DEVICE_ND_NET_OFFSET) || !net)
        return 0;
    if (read_kernel(&cookie, sizeof(cookie), net + NET_COOKIE_OFFSET))
        return 0;
    return cookie;
#else
    return 0;
#endif
}

/* Which of our devices a packet came in by (CARRIED_BY_*: a hooked device,
 * our upload IFB), 0: none; cookie: device_netns_cookie's (the device's
 * namespace: the one it came in by is in it too). One lookup. */
static __always_inline __u32 came_by(struct __sk_buff *skb, __u64 cookie)
{
    struct carrying_device key = {};
    key.netns_cookie = cookie;
    key.ifindex = skb->ingress_ifindex;
    __u8 *by = key.netns_cookie ? carrying_devices.lookup(&key) : 0;
    return by ? *by & (CARRIED_BY_HOOK | CARRIED_BY_IFB) : 0;
}

/* How a socketless packet's nonzero tc_index came (came_by), 0: not by us.
 * Only a packet with a nonzero tc_index pays this: three reads (its cookie),
 * one lookup. */
static __always_inline __u32 carried_by(struct __sk_buff *skb, __u64 cookie)
{
    return skb->tc_index ? came_by(skb, cookie) : 0;
}

/* Whether the packet leaves by one of the link's uplinks (ON_LINK, written by
 * helper/kernel/tc_shaper.py): only there is a forwarded packet the link
 * tree's. Another container's veth is an uplink to the shaper as well, and
 * what one container sent another (never leaving by the link) passed the
 * link tree's class there: 600 of 600 (review24,
 * tests/e2e/test_container_token_leak.py). */
static __always_inline int leaves_by_the_link(struct __sk_buff *skb, __u64 cookie)
{
    struct carrying_device key = {};
    key.netns_cookie = cookie;
    key.ifindex = skb->ifindex;
    __u8 *flags = key.netns_cookie ? carrying_devices.lookup(&key) : 0;
    return flags && (*flags & ON_LINK);
}

/* The uplink's egress, a forwarded packet whose slot the veth's hook wrote:
 * note its flow for the download, and its class (0: none); only for a slot
 * whose forwarded flows the helper's tree classes in some direction. Slot 0
 * (a flow of no slot of ours) or one classed nowhere: forget the tuple if
 * noted, so the downloads of a flow that took over a noted tuple (the same
 * remote, the same port after NAT: a port NAT kept, another container's
 * flow) are not classed as the slot's. But not for a packet our upload IFB
 * sends on (tcout36): it was judged as it came, and one queued in the
 * default class before the slot's flow was noted (at a link's start, or
 * another flow's on that tuple) left after it and made the note forgotten
 * until the flow's next packet (8-85 ms; the downloads between unclassed).
 * The device is looked up only then: a noted tuple, no classed slot. */
static __always_inline __u32 classify_forwarded_upload(struct __sk_buff *skb, __u32 slot, __u32 classes)
{
    struct forwarded_flow flow = {};
    __u32 l4, ip_bytes;
    if (skb->protocol == bpf_htons(ETH_P_IP)) {
        struct iphdr ip;
        if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET) < 0 ||
            (ip.frag_off & bpf_htons(0x1fff)))
            return 0;
        flow.proto = ip.protocol;
        flow.family = 4;
        flow.remote[0] = ip.daddr;
        flow.local[0] = ip.saddr;
        l4 = ip.ihl * 4;
        ip_bytes = bpf_ntohs(ip.tot_len);
    } else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr ip6;
        if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET) < 0)
            return 0;
        flow.proto = ip6.nexthdr;
        flow.family = 6;
        __builtin_memcpy(flow.remote, &ip6.daddr, 16);
        __builtin_memcpy(flow.local, &ip6.saddr, 16);
        l4 = sizeof(ip6);
        ip_bytes = sizeof(ip6) + bpf_ntohs(ip6.payload_len);
    } else {
        return 0;
    }
    if (flow.proto != IP_PROTO_TCP && flow.proto != IP_PROTO_UDP)
        return 0;
    __u16 ports[2];
    if (bpf_skb_load_bytes_relative(skb, l4, ports, 4, BPF_HDR_START_NET) < 0)
        return 0;
    flow.local_port = ports[0];
    flow.remote_port = ports[1];
    struct forwarded_note *noted = forwarded_flows.lookup(&flow);
    if (!slot || !classes) { /* no slot, or one classed in no direction here: nothing to note */
        __u64 cookie = noted ? device_netns_cookie(skb) : 0;
        if (noted && noted->netns_cookie == cookie && came_by(skb, cookie) != CARRIED_BY_IFB)
            forwarded_flows.delete(&flow);
        return 0;
    }
    if (!noted || noted->slot != slot) {
        struct forwarded_note note = {};
        note.slot = slot;
        note.netns_cookie = device_netns_cookie(skb);
        forwarded_flows.update(&flow, &note);
    }
    if (!(classes & FORWARDED_UP))
        return 0;
    forwarded_matched(slot, FORWARDED_UP);
    if (flow.proto == IP_PROTO_TCP && tcp_pure_ack(skb, 0, l4, ip_bytes, 1))
        return 0; /* as a local socket's, in no class */
    struct slot_pacing *pacing = upload_pacing.lookup(&slot);
    if (!pacing || !pacing->rate_bps)
        return 0;
    __u32 classid = (HTB_MAJOR << 16) | slot;
    skb->priority = classid;
    return classid;
}

/* The uplink's ingress, a packet for no socket of this namespace: the slot
 * of the forwarded flow it answers, when the helper's tree classes its
 * downloads; 0 otherwise. The tuple as classify_ingress read it. */
static __always_inline __u32 forwarded_download_slot(struct __sk_buff *skb, struct bpf_sock_tuple *tuple, __u8 proto,
                                                     int ipv6)
{
    struct forwarded_flow flow = {};
    flow.proto = proto;
    if (ipv6) {
        flow.family = 6;
        __builtin_memcpy(flow.remote, tuple->ipv6.saddr, 16);
        __builtin_memcpy(flow.local, tuple->ipv6.daddr, 16);
        flow.remote_port = tuple->ipv6.sport;
        flow.local_port = tuple->ipv6.dport;
    } else {
        flow.family = 4;
        flow.remote[0] = tuple->ipv4.saddr;
        flow.local[0] = tuple->ipv4.daddr;
        flow.remote_port = tuple->ipv4.sport;
        flow.local_port = tuple->ipv4.dport;
    }
    struct forwarded_note *noted = forwarded_flows.lookup(&flow);
    if (!noted || !noted->slot || !forwarded_class(noted->slot, FORWARDED_DOWN) ||
        noted->netns_cookie != device_netns_cookie(skb))
        return 0;
    forwarded_matched(noted->slot, FORWARDED_DOWN);
    return noted->slot;
}

/* The ingress of a device by which another namespace's socket sends into this
 * one (skb->sk is still that socket here, ip_rcv orphans it): its slot goes
 * with the packet in skb->tc_index. Nothing is classed here. Any tc filter's
 * match writes tc_index too (TC_H_MIN of its classid), one in the other
 * namespace as well, whose root may be a user's (an unprivileged container):
 * a packet without a slot of ours (or without a socket) goes on with 0,
 * never what came with it. */
static __always_inline void carry_slot(struct __sk_buff *skb)
{
    struct bpf_sock *sk = skb->sk;
    struct bpf_sock *full = sk ? bpf_sk_fullsock(sk) : 0;
    struct sock_tag *tag = full ? tag_of_socket(full) : 0; /* an MPTCP subflow: its connection's */
    __u32 slot = tag ? tag->app_slot & 0xffff : 0;
    slot = slot != 0xffff ? slot : 0;
    skb->tc_index = slot;
    __u32 token = slot ? forwarded_token(slot) : 0; /* 0: the slot is classed nowhere here */
    if (!token)
        return;
    /* Not for a socket of the classing namespace (review24): its packets
     * never need one, and this hook runs in a container's namespace too (its
     * own download limit), where a packet the helper's namespace sends in
     * still has its socket: a host application's token written there (its
     * TCP ACKs; its other packets pass our upload IFB, which drops the
     * socket) was read by the container's socket filter and forged that
     * application's critical class (600 of 600,
     * tests/e2e/test_container_token_leak.py). The socket's namespace, not
     * the device's: one helper call, where the device's cost 90 ns a packet
     * (three kernel reads; bench/forwarded_ns.py --link --classed). */
    __u32 home = 0;
    __u64 *classing = forwarded_tokens.lookup(&home);
    if (classing && bpf_get_netns_cookie(skb) != *classing)
        bpf_set_hash(skb, token);
}

/* The upload's one-way reading (one_way.h says what it is), built with
 * -DCHADT_ONE_WAY: chadt_tc_out sits at the verifier's edge with it, so the
 * helper builds and loads the programs without it when a kernel or compiler
 * refuses them (datapath.py), and the limits and the counting hold. */
#ifdef CHADT_ONE_WAY
static __always_inline struct one_way_control *one_way_asked(void)
{
    __u32 first = 0;
    struct one_way_control *control = one_way_control.lookup(&first);
    return control && control->on && bpf_ktime_get_ns() < control->until_ns ? control : 0;
}

/* The uplink's egress: a data segment the upload IFB sends on has left our shaper. */
/* Note one segment end of a packet that left just now (or mark it sent twice). */
static __always_inline void one_way_note(struct one_way_segment_key *key, struct one_way_segment *segment)
{
    struct one_way_segment *seen = one_way_segments.lookup(key);
    if (seen)
        seen->state = ONE_WAY_AGAIN;
    else
        one_way_segments.update(key, segment);
}

/* 1: a packet our upload IFB sends on (while the reading is asked), which
 * chadt_tc_out then passes untouched at once, as it would further on (classed
 * when it first came): every path of the work here ends in that return, so the
 * verifier does not walk the rest of chadt_tc_out once per path through it
 * (it gave up: "the sequence of 8193 jumps is too complex"). */
static __always_inline int one_way_departed(struct __sk_buff *packet)
{
    /* an opaque copy: otherwise clang keeps &skb->sk from here for chadt_tc_out's
     * own reads later, which the verifier refuses ("dereference of modified ctx ptr") */
    struct __sk_buff *skb = packet;
    asm volatile("" : "+r"(skb));
    struct one_way_control *control = one_way_asked();
    if (!control || skb->sk || skb->ingress_ifindex != control->ifb_ifindex)
        return 0;
#ifdef CHADT_ONE_WAY_UNVERIFIABLE
    /* tests only (tests/helper/kernel/test_one_way_fallback.py): a hash map's value
     * read without its NULL check, which every verifier refuses, as another
     * compiler's or kernel's refusal of the reading would be (an array's lookup by a
     * constant key is known not NULL to this kernel's verifier: not that) */
    struct one_way_conn nobody = {};
    struct one_way_reading *unchecked = one_way_readings.lookup(&nobody);
    if (((volatile struct one_way_reading *)unchecked)->count == 0xfeed)
        return 1;
#endif
    struct one_way_tcp tcp = {};
    if (!one_way_parse(skb, &tcp) || !tcp.payload || (tcp.flags & 0x07)) /* SYN, RST, FIN: not read */
        return 1;
    struct one_way_segment_key key = {};
    __builtin_memcpy(key.conn.ours, tcp.saddr, 16);
    __builtin_memcpy(key.conn.theirs, tcp.daddr, 16);
    key.conn.our_port = tcp.sport;
    key.conn.their_port = tcp.dport;
    struct one_way_segment segment = {};
    segment.left_ns = bpf_ktime_get_ns();
    segment.tsval = tcp.tsval;
    segment.state = ONE_WAY_SENT;
    key.end = tcp.seq + tcp.payload;
    one_way_note(&key, &segment);
    /* A GSO packet's segments leave the modem one after another when its bucket
     * is empty: its last segment waits behind the others there (10 segments at
     * 5 Mbit/s: 22 ms), a queue of our own burst, not one that stands. The ends of
     * its first two segments are noted too (a receiver acknowledges every second
     * segment: one of them is where an ACK falls), so a look's least reads the
     * queue ahead of the burst. */
    __u32 size = skb->gso_size;
    __u32 segments = skb->gso_segs;
    if (!size || segments < 2 || size >= tcp.payload)
        return 1;
    /* not marked when sent again (a lookup here made the program too complex for
     * the verifier): an ACK of a resent segment echoes the resending's stamp,
     * newer than this one's, and is not read (one_way_acked) */
    key.end = tcp.seq + size;
    one_way_segments.insert(&key, &segment);
    if (segments > 2) {
        key.end = tcp.seq + 2 * size;
        one_way_segments.insert(&key, &segment);
    }
    return 1;
}

/* The uplink's ingress: a pure ACK of a noted segment's end gives a reading.
 * l3: where the IP header begins. A pure ACK is its headers alone (at most 60
 * bytes of IP and 60 of TCP): a longer packet (the download's data) is not
 * parsed (+280 ns a download packet when it was: docs/benchmarks/costs.md). */
static __always_inline void one_way_acked(struct __sk_buff *skb, __u32 l3)
{
    if (skb->len > l3 + ONE_WAY_ACK_MAX || !one_way_asked())
        return;
    struct one_way_tcp tcp = {};
    if (!one_way_parse(skb, &tcp) || tcp.payload || (tcp.flags & TCP_ACK_RST_SYN_FIN) != TCP_ACK)
        return;
    struct one_way_segment_key key = {};
    __builtin_memcpy(key.conn.ours, tcp.daddr, 16);
    __builtin_memcpy(key.conn.theirs, tcp.saddr, 16);
    key.conn.our_port = tcp.dport;
    key.conn.their_port = tcp.sport;
    key.end = tcp.ack;
    struct one_way_segment *segment = one_way_segments.lookup(&key);
    /* a duplicate ACK (its segment taken out at the first), a segment sent
     * twice, or one stamped before the segment whose stamp the ACK echoes (it
     * waited for a hole to fill: bench/one_way.py): not read */
    if (!segment || segment->state != ONE_WAY_SENT || (__s32)(segment->tsval - tcp.tsecr) < 0)
        return;
    __s64 raw = (__s64)tcp.tsval * ONE_WAY_NS_PER_TICK - (__s64)segment->left_ns;
    /* read: out of the map (kept, the ACK's lookup made it recently used, and
     * the LRU evicted segments still waiting for theirs first) */
    one_way_segments.delete(&key);
    struct one_way_reading *reading = one_way_readings.lookup(&key.conn);
    if (!reading) {
        struct one_way_reading first = {};
        first.least_ns = raw;
        first.count = 1;
        if (one_way_readings.update(&key.conn, &first) == 0)
            return;
        reading = one_way_readings.lookup(&key.conn);
        if (!reading)
            return;
    }
    if (raw < reading->least_ns)
        reading->least_ns = raw;
    __sync_fetch_and_add(&reading->count, 1);
}
#else
static __always_inline int one_way_departed(struct __sk_buff *packet)
{
    return 0;
}

static __always_inline void one_way_acked(struct __sk_buff *skb, __u32 l3)
{
}
#endif

/* tc ingress, classic cls_bpf mode: 0 = no match (packet goes on untouched),
 * otherwise the class id, and the filter's mirred action redirects the packet
 * to the IFB whose HTB reads skb->priority. l3: where the IP header begins
 * (cls_bpf sees the packet from its link-layer header on). */
static __always_inline int classify_ingress(struct __sk_buff *skb, __u32 l3)
{
    /* Every packet entering by our hook leaves it with the slot we read from
     * its socket, or 0: one another namespace forwarded (no socket here) came
     * with whatever that namespace's filters wrote. The lookup below still
     * finds a socket of this namespace it is for. */
    carry_slot(skb);
    one_way_acked(skb, l3);
    struct bpf_sock_tuple tuple = {};
    __u32 tuple_len;
    __u8 proto = 0;
    __u32 l4;
    __u32 ip_bytes; /* the IP packet's own length: a frame may be padded */
    if (skb->protocol == bpf_htons(ETH_P_IP)) {
        struct iphdr ip;
        if (bpf_skb_load_bytes(skb, l3, &ip, sizeof(ip)) < 0)
            return 0;
        if (ip.frag_off & bpf_htons(0x1fff))
            return 0;
        proto = ip.protocol;
        l4 = l3 + ip.ihl * 4;
        ip_bytes = bpf_ntohs(ip.tot_len);
        tuple.ipv4.saddr = ip.saddr;
        tuple.ipv4.daddr = ip.daddr;
        if (bpf_skb_load_bytes(skb, l4, &tuple.ipv4.sport, 4) < 0)
            return 0;
        tuple_len = sizeof(tuple.ipv4);
    } else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr ip6;
        if (bpf_skb_load_bytes(skb, l3, &ip6, sizeof(ip6)) < 0)
            return 0;
        proto = ip6.nexthdr; /* extension headers: not limited (fail open) */
        l4 = l3 + sizeof(ip6);
        ip_bytes = sizeof(ip6) + bpf_ntohs(ip6.payload_len);
        __builtin_memcpy(tuple.ipv6.saddr, &ip6.saddr, 16);
        __builtin_memcpy(tuple.ipv6.daddr, &ip6.daddr, 16);
        if (bpf_skb_load_bytes(skb, l4, &tuple.ipv6.sport, 4) < 0)
            return 0;
        tuple_len = sizeof(tuple.ipv6);
    } else {
        return 0;
    }
    struct bpf_sock *sk;
    if (proto == IP_PROTO_TCP)
        sk = bpf_skc_lookup_tcp(skb, &tuple, tuple_len, BPF_F_CURRENT_NETNS, 0);
    else if (proto == IP_PROTO_UDP)
        sk = bpf_sk_lookup_udp(skb, &tuple, tuple_len, BPF_F_CURRENT_NETNS, 0);
    else
        return 0;
    __u32 slot = 0;
    if (!sk) {
        slot = forwarded_download_slot(skb, &tuple, proto, skb->protocol == bpf_htons(ETH_P_IPV6));
        if (!slot)
            return 0;
        goto classed;
    }
    struct bpf_sock *full = bpf_sk_fullsock(sk);
    if (full) {
        struct sock_tag *tag = tag_of_socket(full);
        if (tag)
            slot = tag->app_slot & 0xffff;
    }
    bpf_sk_release(sk);
    if (!slot)
        return 0;
classed:
    /* a pure ACK stays out of the download class, as in chadt_egress */
    if (proto == IP_PROTO_TCP && tcp_pure_ack(skb, l3, l4, ip_bytes, 0))
        return 0;
    __u32 classid = (HTB_MAJOR << 16) | slot;
    skb->priority = classid;
    return classid;
}

int chadt_tc_in(struct __sk_buff *skb)
{
    return classify_ingress(skb, ETH_HLEN);
}

int chadt_tc_in_l3(struct __sk_buff *skb)
{
    return classify_ingress(skb, 0);
}

/* A limited packet of a socket of another namespace than the one whose link
 * tree classes forwarded flows (a container's), on its way to its own
 * namespace's upload IFB: what that IFB sends on skips the host end's
 * ingress (carry_slot), so the slot and its token go with it from here. Not
 * for the classing namespace's own sockets: a token is one value for all of
 * a slot's flows, and as skb->hash it would put them on one queue. */
static __always_inline void carry_token(struct __sk_buff *skb, __u32 slot)
{
    __u32 token = forwarded_token(slot);
    if (!token)
        return;
    __u32 home = 0;
    __u64 *classing = forwarded_tokens.lookup(&home);
    /* the packet's socket's namespace (it has one here): one helper call, where
     * the socket's tag cost two (bpf_sk_fullsock, sk_storage_get) */
    if (!classing || bpf_get_netns_cookie(skb) == *classing)
        return;
    /* The socket's own slot only (review24): skb->priority names the class,
     * and a container's root sets any on its own sockets (SO_PRIORITY; our
     * class ids are no secret, and a socket nobody limits keeps it): a socket
     * of no application was given a host application's slot and token, 600
     * of 600 packets in its critical class at the uplink
     * (tests/e2e/test_container_token_leak.py). */
    struct bpf_sock *sk = skb->sk;
    struct bpf_sock *full = sk ? bpf_sk_fullsock(sk) : 0;
    struct sock_tag *tag = full ? tag_of_socket(full) : 0;
    if (!tag || (tag->app_slot & 0xffff) != slot)
        return;
    struct slot_pacing *pacing = upload_pacing.lookup(&slot);
    if (pacing && pacing->divided) { /* between namespaces (namespace_shares.py) */
        struct namespace_slot share = {};
        share.netns_cookie = *classing;
        share.app_slot = slot;
        if (namespace_pacing.lookup(&share))
            return; /* the classing namespace's class holds its own share: not these packets too */
    }
    skb->tc_index = slot;
    bpf_set_hash(skb, token);
}

/* A packet that still has its socket here is not checked by its token (only
 * a forwarded one is, below), so a token it carries goes no further (review24):
 * a container's frame a bridge of the helper's namespace forwards to another
 * container's port keeps its socket (nothing routes it), and carry_slot at
 * its own port wrote its slot's token; the other container read it in
 * skb->hash, one value for all eight of the application's flows
 * (tests/e2e/test_container_token_leak.py, with bridge-nf-call-iptables 0;
 * with 1 the socket is gone at that port and the forwarded path below drops
 * the token). Our egress hook on that port drops it. */
static __always_inline void drop_token(struct __sk_buff *skb)
{
    __u32 token = forwarded_token(skb->tc_index);
    if (token && skb->hash == token)
        bpf_set_hash_invalid(skb);
}

/* tc egress, classic cls_bpf mode, on every uplink of a namespace whose
 * uploads are shaped: a packet the cgroup egress program put into a limited
 * slot's class (skb->priority, shape_upload) matches, and the filter's mirred
 * action redirects it to the namespace's upload IFB, whose HTB holds the
 * slot's uploads over all uplinks together; the IFB then sends it on from
 * the uplink (which skips tc actions for it, so it is not redirected again).
 * A packet without its socket does not match: mirred redirects a clone,
 * which has none, so a packet the IFB sent on was shaped already. A vxlan
 * keeps skb->priority on the packet it builds around that one, and the
 * uplink's hook classed it again after the vxlan's (the one upload IFB counted
 * each byte twice, the limit held at half). chadt_egress classes a packet
 * only by its socket's tag. A matched packet of another namespace's socket
 * (this is a container's shaper) takes its slot and token along for the
 * uplink (carry_token). Everything else: 0, no
 * match, the packet goes on untouched. */
int chadt_tc_out(struct __sk_buff *skb)
{
    __u32 classid = skb->priority;
    __u32 slot = classid & 0xffff;
    if (one_way_departed(skb))
        return 0; /* sent on by our upload IFB: classed (or not) when it first came */
    if (!skb->sk && forwarded_in_use()) { /* forwarded: carry_slot */
        /* a slot classed nowhere here is as none, whoever wrote it: no reads to
         * find where it came from (but for a noted tuple: not if our IFB sent it) */
        __u32 carried = skb->tc_index;
        __u32 *classes = carried ? forwarded_classes.lookup(&carried) : 0;
        if (!classes || !*classes)
            return classify_forwarded_upload(skb, 0, 0);
        __u64 cookie = device_netns_cookie(skb); /* read once: a hash lookup each after */
        __u32 by = carried_by(skb, cookie);
        if (by == CARRIED_BY_IFB)
            return 0; /* sent on by our IFB: classed (or not) when it first came */
        __u32 token = forwarded_token(carried);
        if (by != CARRIED_BY_HOOK || !token || skb->hash != token)
            return classify_forwarded_upload(skb, 0, 0);
        /* the token did its work: the kernel hashes the flow again for the
         * uplink's queue (a slot's token is one value for all its flows) */
        bpf_set_hash_invalid(skb);
        if (!leaves_by_the_link(skb, cookie))
            return 0; /* to another container of this host, say: not the link's */
        return classify_forwarded_upload(skb, carried, *classes);
    }
    if (skb->sk && skb->tc_index) /* a frame bridged from another namespace's socket */
        drop_token(skb);
    if ((classid >> 16) != HTB_MAJOR || !slot || slot == 0xffff || !skb->sk)
        return 0;
    carry_token(skb, slot); /* a token only while forwarded flows are classed */
    return classid;
}
