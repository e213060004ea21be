/* Map layouts shared by every ChadThrottle BPF program.
 *
 * helper/kernel/layout.py mirrors these structs with ctypes;
 * tests/helper/kernel/test_layout_btf.py checks each map's key and value struct
 * as compiled (the programs' BTF: sizes, member names, offsets) against the
 * mirrors. Change them together.
 *
 * The constants the programs share with the helper (HTB_MAJOR, the tc handle
 * major of the helper's HTB qdiscs; COUNTER_SLOT_BITS and COUNTER_SLOT_CPUS; the
 * counter slots' states SLOT_*; GATE_BLOCK and GATE_QUOTA; POLICE_UP and
 * POLICE_DOWN; chadt_sockops' numbers) have their one home in the helper
 * (layout.py, socket_tagging.py) and come with -D (program_build.compile_flags).
 */
#ifndef CHADTHROTTLE_MAPS_H
#define CHADTHROTTLE_MAPS_H

#if !defined(HTB_MAJOR) || !defined(COUNTER_SLOT_BITS) || !defined(COUNTER_SLOT_CPUS) || !defined(GATE_BLOCK)
#error "build with the helper's -D flags (helper/kernel/program_build.py compile_flags)"
#endif

#define MAX_SLOTS 65536 /* application slots; HTB minors 1..0xfffe */
#define MAX_TRACKED_PROCESSES 65536
#define MAX_TRAFFIC_KEYS 65536
#define MAX_NAMESPACE_PACING 4096 /* (namespace, slot) pairs of limits divided between namespaces */

/* Stored on every socket (sk_storage, cloned to accepted sockets). */
struct sock_tag {
    __u32 owner_tgid;   /* process that created the socket; 0 when unknown */
    __u32 app_slot;     /* the application's limit slot; 0 = not limited */
    __u64 netns_cookie; /* the socket's network namespace (it never changes), so a packet
                           needs no bpf_get_netns_cookie call; 0 when not known */
    __u64 owner_start;  /* when that process started: clock ticks after boot, as
                           /proc/PID/stat's starttime (the kernel hands a pid out
                           again: tgid and start name one process); 0 when unknown */
};

/* Key of the traffic counters: who owns the socket (the process: its tgid
 * and start, struct sock_tag's), and on which device. An ifindex means
 * something only inside its network namespace (every namespace has its own
 * 1, 2, ...), so the namespace's cookie goes with it. */
struct traffic_key {
    __u64 netns_cookie;
    __u32 owner_tgid;
    __u32 ifindex;
    __u64 owner_start;
};

/* What chadt_sock tells the helper about a process's first socket: the
 * process, and its cgroup, which still names its app scope when the process
 * has exited before the helper could read /proc. */
struct owner_event {
    __u64 cgroup_id;
    __u32 tgid;
    __u32 pad;
    __u64 start; /* the process's start (struct sock_tag's owner_start) */
};

/* A first socket's announcement the ring buffer had no room for (the helper
 * held up while processes were made faster than it read): kept here, with
 * its cgroup id as the value, until the helper takes it (Datapath.poll_new_owners). */
struct unheard_owner {
    __u64 start;
    __u32 tgid;
    __u32 pad;
};

/* Monotonic counters; user space computes rates from deltas. Bytes are on
 * the wire at L3: GSO/GRO super-packets are counted as the segments they
 * stand for, each with its own IP and transport header. */
struct traffic_counters {
    __u64 rx_bytes;
    __u64 rx_packets;
    __u64 tx_bytes;
    __u64 tx_packets;
};

/* One CPU's counters of one traffic_key, in front of the traffic hash. The
 * programs find a key's slot from a hash of the key, among this CPU's own
 * COUNTER_SLOTS_PER_CPU, and count there with plain adds: no hash-map lookup
 * per packet (it was about half of the programs' time, bench/overhead.py). A
 * key whose slots hold other keys is counted in the traffic hash; the helper
 * adds both up (helper/kernel/counter_slots.py). One cache line.
 * state: SLOT_FREE, SLOT_CLAIMING (being claimed) or SLOT_HELD (holds the key). */
#define COUNTER_SLOTS_PER_CPU (1 << COUNTER_SLOT_BITS) /* COUNTER_SLOT_CPUS: the possible CPUs */
struct counter_slot {
    __u64 state;
    __u64 netns_cookie;
    __u32 owner_tgid;
    __u32 ifindex;
    __u64 owner_start;
    __u64 rx_bytes;   /* rx_bytes..tx_packets: as in struct traffic_counters */
    __u64 rx_packets;
    __u64 tx_bytes;
    __u64 tx_packets;
};

/* Upload pacing state of one application slot (an array entry per slot).
 * The helper writes rate_bps and cn_queue_ns; the egress program keeps a
 * virtual queue (GCRA): virtual_time_ns is when the shaper will have sent
 * everything handed to it so far. Past cn_queue_ns of virtual queue, packets
 * still pass to HTB but TCP is told to back off (NET_XMIT_CN), so the leaf
 * queue never overflows and nothing is dropped or sent twice. */
struct slot_pacing {
    struct bpf_spin_lock lock;
    __u32 divided;         /* the slot's limit is divided between network namespaces: a
                              socket's namespace's entry in namespace_pacing, if it has
                              one, paces it instead (see struct namespace_slot) */
    __u64 rate_bps;        /* 0: the slot has no upload limit */
    __u64 cn_queue_ns;
    __u64 virtual_time_ns;
    __u64 cn_marks;        /* packets sent with a congestion notice */
};

/* A limit slot as slot_by_tgid and slot_by_cgroup give it to a new socket:
 * only to one a process of uid creates (its real uid; ANY_UID: anyone's). A
 * user's rule tags its own scopes, and root's processes run there too (sudo
 * or pkexec from a terminal): their sockets are not the user's to limit.
 * start (slot_by_tgid): the process's (struct sock_tag's owner_start), so a
 * new process under its pid, once it exited, does not get its slot before
 * the helper sees it; 0: any process's. */
struct owned_slot {
    __u32 app_slot;
    __u32 uid;
    __u64 start;
};

/* Key of a slot's pacing in one network namespace (namespace_pacing,
 * namespace_socket_pacing). A limit divided between namespaces gives each
 * namespace's HTB class a share of it (helper/kernel/namespace_shares.py); the
 * sockets there are paced at that share, not at the whole limit, so a
 * namespace offers its class what the class passes. */
struct namespace_slot {
    __u64 netns_cookie; /* struct sock_tag's */
    __u32 app_slot;
    __u32 pad;
};

/* What each of a slot's TCP sockets is held to (an array entry per slot; 0:
 * not held), both as wire rates (L3 bytes/s). chadt_sockops applies them when
 * a connection opens, socket_tagging.py to sockets already open:
 *   pacing_bps  uploads: SO_MAX_PACING_RATE = pacing_bps * mss / (mss + headers)
 *   window_bps  downloads: TCP_WINDOW_CLAMP = window_bps * (rtt + queue), so the
 *               sender keeps only a short queue in the shaper (see
 *               receive_window_bytes in socket_tagging.py) */
struct socket_caps {
    __u32 pacing_bps;
    __u32 window_bps;
};

/* Block and quota of one application slot and direction (an array entry at
 * policer_key(slot, direction), mmapped by the helper). The helper writes
 * single fields in place while the programs add to quota_used_bytes
 * atomically, so neither overwrites the other (the policers array has a spin
 * lock, cannot be mmapped, and its whole-entry writes would lose counts).
 * The gate holds only while now < lease_until_ns, which the helper renews
 * every tick: a helper that is gone fails open within the lease. */
/* flags: GATE_BLOCK, no packet passes; GATE_QUOTA, packets pass while
 * quota_used_bytes < quota_allowance_bytes */
struct slot_gate {
    __u64 lease_until_ns;        /* helper: bpf_ktime_get_ns() until which the gate holds */
    __u64 quota_allowance_bytes; /* helper: the count at which the budget is spent */
    __u64 quota_used_bytes;      /* programs: L3 bytes passed under GATE_QUOTA, monotonic */
    __u32 flags;                 /* GATE_BLOCK | GATE_QUOTA; 0: open */
    __u32 pad;
};

#endif
