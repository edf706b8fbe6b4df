/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rfw.ko: C wrappers for kernel functions that are `static inline` or macros
 * and so have no symbol that Rust could call. Each wrapper calls exactly one
 * kernel function or macro and decides nothing; all logic is in Rust.
 */
#ifndef RFW_HELPERS_H
#define RFW_HELPERS_H

#include <linux/types.h>
#include <linux/spinlock_types.h>

struct net;
struct sk_buff;
struct genl_info;
struct genl_family;
struct nlattr;
struct kmem_cache;
struct net_device;
struct in_device;
struct delayed_work;
struct work_struct;
struct netlink_callback;
struct mutex;
struct lock_class_key;

/* Module parameters (declared in helpers.c: module_param fills the kernel's
 * struct kernel_param; Rust reads the values and decides what they mean). */
extern unsigned int rfw_param_hashsize;
extern unsigned int rfw_param_max;
extern unsigned int rfw_param_max_total;
void rfw_param_set_max_total(unsigned int value);

void *rfw_net_generic(const struct net *net, unsigned int id);
struct net *rfw_genl_info_net(const struct genl_info *info);
bool rfw_net_owned_by_init_user_ns(const struct net *net);

/* Per-CPU memory (kmod/sys/percpu.rs). */
void __percpu *rfw_alloc_percpu(size_t size, size_t align);
void *rfw_this_cpu_ptr(void __percpu *ptr);
/* rfw_context_cpu_ptr()'s *ctx: interrupt_context_level() in the low bits,
 * and RFW_CONTEXT_BH_OFF when in_softirq(). */
#define RFW_CONTEXT_LEVEL_MASK 0xff
#define RFW_CONTEXT_BH_OFF 0x100
void *rfw_context_cpu_ptr(void __percpu *ptr, unsigned int *ctx);
void rfw_this_cpu_add_u64(u64 __percpu *counter, u64 value);
void rfw_this_cpu_add_u64_pair(u64 __percpu *counter, u64 first, u64 second);
void *rfw_per_cpu_ptr(void __percpu *ptr, int cpu);
int rfw_next_possible_cpu(int cpu);
unsigned int rfw_nr_cpu_ids(void);

size_t rfw_nlmsg_default_size(void);
void *rfw_genlmsg_put_reply(struct sk_buff *skb, struct genl_info *info,
			    const struct genl_family *family, int flags, u8 cmd);
void rfw_genlmsg_end(struct sk_buff *skb, void *hdr);
int rfw_genlmsg_reply(struct sk_buff *skb, struct genl_info *info);
void rfw_nlmsg_free(struct sk_buff *skb);
struct nlattr *rfw_nla_nest_start(struct sk_buff *skb, int attrtype);
void rfw_nla_nest_end(struct sk_buff *skb, struct nlattr *start);
int rfw_nla_put_u64_64bit(struct sk_buff *skb, int attrtype, u64 value, int padattr);


/* Locks (kmod/sys/sync.rs): each lock's lockdep class key is a Rust static. */
void rfw_spin_lock_init(spinlock_t *lock, const char *name,
			struct lock_class_key *key);
void rfw_spin_lock_bh(spinlock_t *lock);
int rfw_spin_trylock_bh(spinlock_t *lock);
void rfw_spin_unlock_bh(spinlock_t *lock);
void rfw_spin_lock_nested(spinlock_t *lock, unsigned int subclass);
void rfw_spin_unlock(spinlock_t *lock);
void rfw_mutex_init(struct mutex *lock, const char *name,
		    struct lock_class_key *key);
void rfw_mutex_lock(struct mutex *lock);
void rfw_local_bh_disable(void);
void rfw_local_bh_enable(void);
void rfw_rcu_read_lock(void);
void rfw_rcu_read_unlock(void);

/* Memory. */
struct kmem_cache *rfw_kmem_cache_create(const char *name, unsigned int size,
					 unsigned int align);
void *rfw_kmem_cache_alloc_atomic(struct kmem_cache *cache);
unsigned long rfw_totalram_pages(void);

/* Time. */
unsigned long rfw_msecs_to_jiffies(unsigned int ms);

/* Deferred work. */
typedef void (*rfw_work_fn)(struct work_struct *work);
void rfw_init_delayed_work(struct delayed_work *dwork, rfw_work_fn fn);
bool rfw_queue_delayed_work(struct delayed_work *dwork, unsigned long delay);
bool rfw_mod_delayed_work(struct delayed_work *dwork, unsigned long delay);

/* Packets. */
bool rfw_nf_log_allowed(const struct net *net);

/* Netlink. */
struct net *rfw_cb_net(const struct netlink_callback *cb);
u32 rfw_cb_portid(const struct netlink_callback *cb);
void rfw_genlmsg_cancel(struct sk_buff *skb, void *hdr);
/* NLM_F_DUMP_INTR on a dump message if cb->seq changed since the last one. */
void rfw_genl_dump_check_consistent(struct netlink_callback *cb, void *hdr);
void rfw_cond_resched(void);


/* rules, NAT and mangle (kmod/rules/) */
__be32 rfw_rt_nexthop4(const struct sk_buff *skb, __be32 daddr);
struct in_device *rfw_in_dev_get_rcu(const struct net_device *dev);
u64 rfw_ktime_get_ns(void);
struct sk_buff *rfw_genlmsg_new_size(size_t payload);

struct net *rfw_ifa4_info(const void *ptr, __be32 *addr);
struct net *rfw_ifa6_info(const void *ptr, u8 *addr);

void rfw_local_port_range(const struct net *net, int *low, int *high);

bool rfw_skb_has_demux_sk(const struct sk_buff *skb);
void rfw_skb_orphan(struct sk_buff *skb);

bool rfw_skb_is_gso_tcp(const struct sk_buff *skb);

struct net *rfw_netdev_info(void *ptr, int *ifindex);

/* The fast path (kmod/sys/dst.rs): a forwarded packet's route, held. */
struct dst_entry;
struct in6_addr;
struct dst_entry *rfw_skb_dst(const struct sk_buff *skb);
bool rfw_dst_hold_safe(struct dst_entry *dst);
void rfw_dst_release(struct dst_entry *dst);
bool rfw_dst_has_xfrm(const struct dst_entry *dst);
u32 rfw_rt6_cookie(struct dst_entry *dst);
bool rfw_dst_check(struct dst_entry *dst, u32 cookie);
unsigned int rfw_dst_mtu_forward(const struct dst_entry *dst, bool v6);
int rfw_dst_ifindex(const struct dst_entry *dst);
bool rfw_skb_exceeds_mtu(const struct sk_buff *skb, unsigned int mtu);
int rfw_skb_cow_head_for(struct sk_buff *skb, const struct dst_entry *dst);
void rfw_neigh_xmit4(struct sk_buff *skb, struct dst_entry *dst, __be32 daddr);
void rfw_neigh_xmit6(struct sk_buff *skb, struct dst_entry *dst,
		     const struct in6_addr *daddr);

/* The fast path's ingress hooks (kmod/sys/netfilter.rs DevHooks). */
struct nf_hook_ops;
struct nf_hook_state;
struct nf_hook_ops *rfw_dev_hook_new(struct net_device *dev,
				     unsigned int (*fn)(void *priv, struct sk_buff *skb,
							const struct nf_hook_state *state),
				     void *priv, int priority);
void rfw_dev_hook_free(struct nf_hook_ops *ops);
const struct net_device *rfw_dev_hook_dev(const struct nf_hook_ops *ops);
void rfw_rtnl_lock(void);
void rfw_rtnl_unlock(void);
int rfw_for_each_netdev(struct net *net,
			int (*fn)(void *ctx, struct net_device *dev), void *ctx);
struct net_device *rfw_netdev_notifier_dev(void *ptr);
u16 rfw_skb_host_protocol(const struct sk_buff *skb);
int rfw_skb_trim_rcsum(struct sk_buff *skb, unsigned int len);

#endif
