/* The ebpf backend: policing in the cgroup_skb programs, no qdiscs.
 *
 * One state per application slot and direction (an array entry at
 * policer_key(slot, direction)), updated under its spin lock. Accounting is a
 * virtual clock (GCRA): virtual_time_ns is when the slot will have "sent"
 * everything admitted so far at rate_bps. A packet of n bytes costs
 * n * 1e9 / rate_bps ns; the remainder of that division is carried in
 * virtual_rem (units of 1/rate_bps ns), so no fraction is lost at any packet
 * rate. The virtual queue (virtual_time_ns - now) may grow to burst_ns, which
 * the helper sizes for several 64 KB GSO super-packets.
 *
 * Egress (HBM, samples/bpf/hbm*): past mark_ns of virtual queue a packet still
 * passes but is CE-marked when ECN-capable and carries a congestion notice
 * (return 3: TCP enters CWR); past burst_ns it is refused with a notice
 * (return 2: TCP keeps the data and sends it again later, nothing is lost on
 * the wire). Ingress runs at the socket, after the wire: past mark_ns an
 * ECN-capable packet is CE-marked, past burst_ns a packet is dropped and the
 * sender retransmits it.
 *
 * The entry's `active` flag is the per-slot, per-direction backend switch:
 * while it is 0 the tc backend's path (skb->priority, HTB) runs unchanged.
 */
#ifndef CHADTHROTTLE_POLICER_H
#define CHADTHROTTLE_POLICER_H

/* POLICE_UP and POLICE_DOWN (-D): the direction half of a policer key */
#define POLICER_ENTRIES (2 * MAX_SLOTS)

struct slot_policer {
    struct bpf_spin_lock lock;
    __u32 active;          /* 1: the ebpf backend polices this slot and direction */
    __u64 rate_bps;        /* bytes per second on the wire at L3 */
    __u64 burst_ns;        /* largest virtual queue: the burst at rate_bps */
    __u64 mark_ns;         /* virtual queue past which packets are marked */
    __u64 virtual_time_ns;
    __u64 virtual_rem;     /* fraction of a ns, in 1/rate_bps ns */
    __u64 passed_bytes;    /* monotonic statistics, read by the helper */
    __u64 passed_packets;
    __u64 dropped_bytes;
    __u64 dropped_packets;
    __u64 marked_packets;  /* ECN CE set */
    __u64 notified_packets; /* passed or refused with a congestion notice */
};

static __always_inline __u32 policer_key(__u32 slot, __u32 direction)
{
    return (slot & 0xffff) * 2 + direction;
}

/* The rest is the datapath's; a layout probe (tests/support/layout_probe.py)
 * takes the struct and policer_key above without it. */
#ifndef POLICER_LAYOUT_ONLY

BPF_ARRAY(policers, struct slot_policer, POLICER_ENTRIES);

#define POLICER_NSEC_PER_SEC 1000000000ULL

enum police_verdict { POLICE_PASS, POLICE_MARK, POLICE_DROP };

/* The lookup itself (policers.lookup) is written in datapath.c: bcc rewrites
 * map method calls only in the main source file. */

/* Charge the packet to the slot's virtual clock, or refuse it. */
static __always_inline enum police_verdict police(struct slot_policer *p, __u64 bytes, __u32 segments)
{
    __u64 now = bpf_ktime_get_ns();
    __u64 rate = p->rate_bps;
    if (!rate)
        return POLICE_PASS;
    __u64 cost = bytes * POLICER_NSEC_PER_SEC;
    __u64 cost_ns = cost / rate;
    __u64 cost_rem = cost % rate;
    enum police_verdict verdict = POLICE_PASS;
    bpf_spin_lock(&p->lock);
    __u64 start = p->virtual_time_ns;
    if (start < now) {
        start = now; /* idle: the queue is empty, the fraction goes with it */
        p->virtual_rem = 0;
    }
    __u64 queue_ns = start - now;
    if (queue_ns > p->burst_ns) {
        verdict = POLICE_DROP;
        p->dropped_bytes += bytes;
        p->dropped_packets += segments;
    } else {
        __u64 rem = p->virtual_rem + cost_rem;
        if (rem >= rate) {
            rem -= rate;
            cost_ns += 1;
        }
        p->virtual_rem = rem;
        p->virtual_time_ns = start + cost_ns;
        p->passed_bytes += bytes;
        p->passed_packets += segments;
        if (queue_ns > p->mark_ns)
            verdict = POLICE_MARK;
    }
    bpf_spin_unlock(&p->lock);
    return verdict;
}

static __always_inline void policer_count(struct slot_policer *p, int marked, int notified)
{
    bpf_spin_lock(&p->lock);
    p->marked_packets += marked;
    p->notified_packets += notified;
    bpf_spin_unlock(&p->lock);
}

/* cgroup_skb egress return codes */
#define POLICE_EGRESS_DROP_CN 2
#define POLICE_EGRESS_PASS_CN 3

static __always_inline int police_egress(struct slot_policer *p, struct __sk_buff *skb, __u64 bytes)
{
    __u32 segments = skb->gso_segs > 1 ? skb->gso_segs : 1;
    enum police_verdict verdict = police(p, bytes, segments);
    if (verdict == POLICE_PASS)
        return 1;
    int marked = verdict == POLICE_MARK && bpf_skb_ecn_set_ce(skb) == 1;
    policer_count(p, marked, 1);
    return verdict == POLICE_DROP ? POLICE_EGRESS_DROP_CN : POLICE_EGRESS_PASS_CN;
}

static __always_inline int police_ingress(struct slot_policer *p, struct __sk_buff *skb, __u64 bytes)
{
    __u32 segments = skb->gso_segs > 1 ? skb->gso_segs : 1;
    enum police_verdict verdict = police(p, bytes, segments);
    if (verdict == POLICE_DROP)
        return 0;
    if (verdict == POLICE_MARK && bpf_skb_ecn_set_ce(skb) == 1)
        policer_count(p, 1, 0);
    return 1;
}

#endif /* POLICER_LAYOUT_ONLY */
#endif
