// SPDX-License-Identifier: GPL-2.0
/*
 * rfw.ko: one-line wrappers around `static inline` kernel functions and
 * macros, for the Rust side (see helpers.h). Nothing here decides anything.
 */
#include <linux/bottom_half.h>
#include <linux/cpumask.h>
#include <linux/jiffies.h>
#include <linux/mm.h>
#include <linux/netdevice.h>
#include <linux/moduleparam.h>
#include <linux/percpu.h>
#include <linux/preempt.h>
#include <linux/rcupdate.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <linux/inetdevice.h>
#include <linux/mutex.h>
#include <linux/timekeeping.h>
#include <net/route.h>
#include <net/ip.h>
#include <net/inet_sock.h>
#include <net/tcp.h>
#include <net/if_inet6.h>
#include <net/genetlink.h>
#include <net/netlink.h>
#include <net/netns/generic.h>
#include <net/sock.h>
#include <linux/user_namespace.h>
#include <net/netfilter/nf_log.h>
#include <net/dst.h>
#include <net/gso.h>
#include <net/ip6_route.h>
#include <net/neighbour.h>
#include <net/xfrm.h>
#include <linux/netfilter.h>
#include <linux/rtnetlink.h>

#include "helpers.h"

/* Zero means "size from RAM as Linux does" (decided in kmod/ct/table.rs). */
unsigned int rfw_param_hashsize;
module_param_named(hashsize, rfw_param_hashsize, uint, 0444);
MODULE_PARM_DESC(hashsize, "connection hash buckets, shared by all namespaces (0: from RAM, as nf_conntrack)");

unsigned int rfw_param_max;
module_param_named(max, rfw_param_max, uint, 0444);
MODULE_PARM_DESC(max, "default connection limit of each namespace (0: the bucket count, as nf_conntrack)");

/* Read-only in sysfs; module init writes back the value it chose for 0. */
unsigned int rfw_param_max_total;
module_param_named(max_total, rfw_param_max_total, uint, 0444);
MODULE_PARM_DESC(max_total, "connection entries of all namespaces together (0: 4 x the RAM-sized bucket count or hashsize if larger, at least max)");

void rfw_param_set_max_total(unsigned int value)
{
	/* sysfs may read the parameter meanwhile (param_get_uint). */
	WRITE_ONCE(rfw_param_max_total, value);
}

void *rfw_net_generic(const struct net *net, unsigned int id)
{
	return net_generic(net, id);
}

struct net *rfw_genl_info_net(const struct genl_info *info)
{
	return genl_info_net(info);
}

bool rfw_net_owned_by_init_user_ns(const struct net *net)
{
	return net->user_ns == &init_user_ns;
}

void __percpu *rfw_alloc_percpu(size_t size, size_t align)
{
	/* Charged to the caller's memory cgroup, as nft_counter's are. */
	return __alloc_percpu_gfp(size, align, GFP_KERNEL_ACCOUNT);
}

void rfw_this_cpu_add_u64(u64 __percpu *counter, u64 value)
{
	this_cpu_add(*counter, value);
}

void rfw_this_cpu_add_u64_pair(u64 __percpu *counter, u64 first, u64 second)
{
	this_cpu_add(counter[0], first);
	this_cpu_add(counter[1], second);
}

void *rfw_per_cpu_ptr(void __percpu *ptr, int cpu)
{
	return per_cpu_ptr(ptr, cpu);
}

int rfw_next_possible_cpu(int cpu)
{
	return cpumask_next(cpu, cpu_possible_mask);
}

unsigned int rfw_nr_cpu_ids(void)
{
	return nr_cpu_ids;
}

size_t rfw_nlmsg_default_size(void)
{
	return NLMSG_DEFAULT_SIZE;
}

void *rfw_genlmsg_put_reply(struct sk_buff *skb, struct genl_info *info,
			    const struct genl_family *family, int flags, u8 cmd)
{
	return genlmsg_put_reply(skb, info, family, flags, cmd);
}

void rfw_genlmsg_end(struct sk_buff *skb, void *hdr)
{
	genlmsg_end(skb, hdr);
}

int rfw_genlmsg_reply(struct sk_buff *skb, struct genl_info *info)
{
	return genlmsg_reply(skb, info);
}

void rfw_nlmsg_free(struct sk_buff *skb)
{
	nlmsg_free(skb);
}

struct nlattr *rfw_nla_nest_start(struct sk_buff *skb, int attrtype)
{
	return nla_nest_start(skb, attrtype);
}

void rfw_nla_nest_end(struct sk_buff *skb, struct nlattr *start)
{
	nla_nest_end(skb, start);
}

int rfw_nla_put_u64_64bit(struct sk_buff *skb, int attrtype, u64 value, int padattr)
{
	return nla_put_u64_64bit(skb, attrtype, value, padattr);
}

/* spin_lock_init with the caller's class key (as rust/helpers/spinlock.c). */
void rfw_spin_lock_init(spinlock_t *lock, const char *name,
			struct lock_class_key *key)
{
#ifdef CONFIG_DEBUG_SPINLOCK
# ifdef CONFIG_PREEMPT_RT
	__spin_lock_init(lock, name, key, false);
# else
	__raw_spin_lock_init(spinlock_check(lock), name, key, LD_WAIT_CONFIG);
# endif
#else
	spin_lock_init(lock);
#endif
}

void rfw_spin_lock_bh(spinlock_t *lock)
{
	spin_lock_bh(lock);
}

int rfw_spin_trylock_bh(spinlock_t *lock)
{
	return spin_trylock_bh(lock);
}

void rfw_spin_unlock_bh(spinlock_t *lock)
{
	spin_unlock_bh(lock);
}

void rfw_spin_lock_nested(spinlock_t *lock, unsigned int subclass)
{
	spin_lock_nested(lock, subclass);
}

void rfw_spin_unlock(spinlock_t *lock)
{
	spin_unlock(lock);
}

void rfw_mutex_init(struct mutex *lock, const char *name,
		    struct lock_class_key *key)
{
	__mutex_init(lock, name, key);
}

void rfw_mutex_lock(struct mutex *lock)
{
	mutex_lock(lock);
}

void rfw_local_bh_disable(void)
{
	local_bh_disable();
}

void rfw_local_bh_enable(void)
{
	local_bh_enable();
}

void rfw_rcu_read_lock(void)
{
	rcu_read_lock();
}

void rfw_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

struct kmem_cache *rfw_kmem_cache_create(const char *name, unsigned int size,
					 unsigned int align)
{
	/*
	 * Unmerged, so that /proc/slabinfo shows rfw's entries on their own;
	 * accounted: an entry created in process context is charged to that
	 * task's memory cgroup (see kmod/sys/slab.rs).
	 */
	return kmem_cache_create(name, size, align, SLAB_NO_MERGE | SLAB_ACCOUNT, NULL);
}

void *rfw_kmem_cache_alloc_atomic(struct kmem_cache *cache)
{
	return kmem_cache_alloc(cache, GFP_ATOMIC | __GFP_NOWARN);
}

unsigned long rfw_totalram_pages(void)
{
	return totalram_pages();
}

unsigned long rfw_msecs_to_jiffies(unsigned int ms)
{
	return msecs_to_jiffies(ms);
}

void rfw_init_delayed_work(struct delayed_work *dwork, rfw_work_fn fn)
{
	INIT_DELAYED_WORK(dwork, fn);
}

bool rfw_queue_delayed_work(struct delayed_work *dwork, unsigned long delay)
{
	return queue_delayed_work(system_power_efficient_wq, dwork, delay);
}

bool rfw_mod_delayed_work(struct delayed_work *dwork, unsigned long delay)
{
	return mod_delayed_work(system_power_efficient_wq, dwork, delay);
}

void *rfw_this_cpu_ptr(void __percpu *ptr)
{
	return this_cpu_ptr(ptr);
}

struct net *rfw_cb_net(const struct netlink_callback *cb)
{
	return sock_net(cb->skb->sk);
}

u32 rfw_cb_portid(const struct netlink_callback *cb)
{
	return NETLINK_CB(cb->skb).portid;
}

void rfw_genlmsg_cancel(struct sk_buff *skb, void *hdr)
{
	genlmsg_cancel(skb, hdr);
}

void rfw_genl_dump_check_consistent(struct netlink_callback *cb, void *hdr)
{
	genl_dump_check_consistent(cb, hdr);
}

void rfw_cond_resched(void)
{
	cond_resched();
}

/* nf_log_syslog.c's nf_log_allowed() (static there): containers do not
 * flood the host's log unless net.netfilter.nf_log_all_netns says so. */
bool rfw_nf_log_allowed(const struct net *net)
{
	return net_eq(net, &init_net) || READ_ONCE(sysctl_nf_log_all_netns);
}

/* ---- rules, NAT and mangle (kmod/rules/) ---- */

__be32 rfw_rt_nexthop4(const struct sk_buff *skb, __be32 daddr)
{
	struct rtable *rt = skb_rtable(skb);

	return rt ? rt_nexthop(rt, daddr) : daddr;
}

/* nf_nat_redirect_ipv4 reads ifa_list's first entry in Rust (sys/netdevice.rs). */
struct in_device *rfw_in_dev_get_rcu(const struct net_device *dev)
{
	return __in_dev_get_rcu(dev);
}

u64 rfw_ktime_get_ns(void)
{
	return ktime_get_ns();
}

struct sk_buff *rfw_genlmsg_new_size(size_t payload)
{
	return genlmsg_new(payload, GFP_KERNEL);
}

struct net *rfw_ifa4_info(const void *ptr, __be32 *addr)
{
	const struct in_ifaddr *ifa = ptr;

	*addr = ifa->ifa_local;
	return dev_net(ifa->ifa_dev->dev);
}

struct net *rfw_ifa6_info(const void *ptr, u8 *addr)
{
	const struct inet6_ifaddr *ifa = ptr;

	memcpy(addr, &ifa->addr, sizeof(ifa->addr));
	return dev_net(ifa->idev->dev);
}

void rfw_local_port_range(const struct net *net, int *low, int *high)
{
	inet_get_local_port_range(net, low, high);
}

bool rfw_skb_has_demux_sk(const struct sk_buff *skb)
{
	return skb->sk && !inet_sk_transparent(skb->sk);
}

void rfw_skb_orphan(struct sk_buff *skb)
{
	skb_orphan(skb);
}

bool rfw_skb_is_gso_tcp(const struct sk_buff *skb)
{
	return skb_is_gso(skb) && skb_is_gso_tcp(skb);
}

/* ---- per-CPU state (kmod/sys/percpu.rs) ---- */

/*
 * PerCpu::with's first step: the preempt count's context bits in *ctx (the
 * level this CPU runs at, RFW_CONTEXT_BH_OFF if bottom halves are off
 * already), and ptr's copy on this CPU. The caller uses that copy only when
 * *ctx says bottom halves are off (so the task stays on this CPU), else it
 * disables them and asks this_cpu_ptr() again: raw_cpu_ptr() here, since
 * the preemption check belongs to the use, which the caller makes exact.
 */
void *rfw_context_cpu_ptr(void __percpu *ptr, unsigned int *ctx)
{
	*ctx = interrupt_context_level() |
	       (in_softirq() ? RFW_CONTEXT_BH_OFF : 0);
	return raw_cpu_ptr(ptr);
}

/* ---- the fast path (kmod/sys/dst.rs) ---- */

struct dst_entry *rfw_skb_dst(const struct sk_buff *skb)
{
	return skb_dst(skb);
}

bool rfw_dst_hold_safe(struct dst_entry *dst)
{
	return dst_hold_safe(dst);
}

void rfw_dst_release(struct dst_entry *dst)
{
	dst_release(dst);
}

bool rfw_dst_has_xfrm(const struct dst_entry *dst)
{
	return dst_xfrm(dst) != NULL;
}

u32 rfw_rt6_cookie(struct dst_entry *dst)
{
	return rt6_get_cookie(dst_rt6_info(dst));
}

bool rfw_dst_check(struct dst_entry *dst, u32 cookie)
{
	return dst_check(dst, cookie) != NULL;
}

/* The MTU a forwarded packet is held to (nf_flow_table_core.c's
 * flow_offload_fill_route: ip(6)_dst_mtu_maybe_forward(dst, true)). */
unsigned int rfw_dst_mtu_forward(const struct dst_entry *dst, bool v6)
{
	return v6 ? ip6_dst_mtu_maybe_forward(dst, true) :
		    ip_dst_mtu_maybe_forward(dst, true);
}

int rfw_dst_ifindex(const struct dst_entry *dst)
{
	return dst->dev->ifindex;
}

/* nf_flow_table_ip.c's nf_flow_exceeds_mtu (after ip_exceeds_mtu). */
bool rfw_skb_exceeds_mtu(const struct sk_buff *skb, unsigned int mtu)
{
	return skb->len > mtu &&
	       !(skb_is_gso(skb) && skb_gso_validate_network_len(skb, mtu));
}

/* The headroom the route's device needs for its link-layer header
 * (ip_forward's skb_cow(skb, LL_RESERVED_SPACE(dev) + header_len)). */
int rfw_skb_cow_head_for(struct sk_buff *skb, const struct dst_entry *dst)
{
	return skb_cow_head(skb, LL_RESERVED_SPACE(dst->dev) + dst->header_len);
}

/*
 * nf_flow_offload_ip_hook's FLOW_OFFLOAD_XMIT_NEIGH transmit, whose steps
 * must run together: the packet leaves on the held route's device, with
 * the route attached without a reference (the caller's RCU section, the
 * hook's, outlives the transmit; a queue that keeps the skb takes its own
 * with skb_dst_force), to the route's next hop for daddr.
 */
void rfw_neigh_xmit4(struct sk_buff *skb, struct dst_entry *dst, __be32 daddr)
{
	__be32 nexthop = rt_nexthop(dst_rtable(dst), daddr);

	skb->dev = dst->dev;
	skb_clear_tstamp(skb);
	skb_dst_drop(skb);
	skb_dst_set_noref(skb, dst);
	neigh_xmit(NEIGH_ARP_TABLE, dst->dev, &nexthop, skb);
}

/* As rfw_neigh_xmit4, nf_flow_offload_ipv6_hook's. */
void rfw_neigh_xmit6(struct sk_buff *skb, struct dst_entry *dst,
		     const struct in6_addr *daddr)
{
	const struct in6_addr *nexthop = rt6_nexthop(dst_rt6_info(dst), daddr);

	skb->dev = dst->dev;
	skb_clear_tstamp(skb);
	skb_dst_drop(skb);
	skb_dst_set_noref(skb, dst);
	neigh_xmit(NEIGH_ND_TABLE, dst->dev, nexthop, skb);
}

/* The device of a netdevice notifier event: its namespace, and its index
 * in *ifindex. */
struct net *rfw_netdev_info(void *ptr, int *ifindex)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);

	*ifindex = dev->ifindex;
	return dev_net(dev);
}

/*
 * The fast path's hooks: one netdev ingress hook per device
 * (kmod/sys/netfilter.rs DevHooks), as nftables' flowtable registers one
 * per device it lists (nft_register_flowtable_net_hooks). Each lives in
 * an allocation of its own, freed a grace period after it was
 * unregistered: the kernel's hook blobs point at their ops (orig_ops, for
 * nf_queue and nfnetlink_hook dumps) until their own RCU free.
 */
struct rfw_dev_hook {
	struct nf_hook_ops ops;
	struct rcu_head rcu;
};

struct nf_hook_ops *rfw_dev_hook_new(struct net_device *dev,
				     unsigned int (*fn)(void *priv, struct sk_buff *skb,
							const struct nf_hook_state *state),
				     void *priv, int priority)
{
	struct rfw_dev_hook *h = kzalloc(sizeof(*h), GFP_KERNEL_ACCOUNT);

	if (!h)
		return NULL;
	h->ops.hook = fn;
	h->ops.priv = priv;
	h->ops.pf = NFPROTO_NETDEV;
	h->ops.hooknum = NF_NETDEV_INGRESS;
	h->ops.priority = priority;
	h->ops.dev = dev;
	return &h->ops;
}

void rfw_dev_hook_free(struct nf_hook_ops *ops)
{
	kfree_rcu(container_of(ops, struct rfw_dev_hook, ops), rcu);
}

const struct net_device *rfw_dev_hook_dev(const struct nf_hook_ops *ops)
{
	return ops->dev;
}

void rfw_rtnl_lock(void)
{
	rtnl_lock();
}

void rfw_rtnl_unlock(void)
{
	rtnl_unlock();
}

/* fn(ctx, dev) for each device of net, RTNL held, until one returns
 * nonzero (returned). */
int rfw_for_each_netdev(struct net *net,
			int (*fn)(void *ctx, struct net_device *dev), void *ctx)
{
	struct net_device *dev;
	int r;

	ASSERT_RTNL();
	for_each_netdev(net, dev) {
		r = fn(ctx, dev);
		if (r)
			return r;
	}
	return 0;
}

struct net_device *rfw_netdev_notifier_dev(void *ptr)
{
	return netdev_notifier_info_to_dev(ptr);
}

/*
 * At netdev ingress, before ip_rcv/ipv6_rcv: the frame's network protocol
 * (host order) if it was addressed to this host (PACKET_HOST: ip_rcv
 * drops PACKET_OTHERHOST, and broadcast or multicast is never a
 * forwarded flow's), else 0.
 */
u16 rfw_skb_host_protocol(const struct sk_buff *skb)
{
	return skb->pkt_type == PACKET_HOST ? ntohs(skb->protocol) : 0;
}

/* ip_rcv_core's and ipv6_rcv's trim of link-layer padding. */
int rfw_skb_trim_rcsum(struct sk_buff *skb, unsigned int len)
{
	return pskb_trim_rcsum(skb, len);
}
