/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rfw.ko: C wrappers for kernel functions that are `static inline` or macros
 * and so have no symbol that Rust could call. Each wrapper calls exactly one
 * kernel function or macro and decides nothing; all logic is in Rust.
 */
#ifndef RFW_HELPERS_H
#define RFW_HELPERS_H

#include <linux/types.h>

struct net;
struct sk_buff;
struct genl_info;
struct genl_family;
struct nlattr;

void *rfw_net_generic(const struct net *net, unsigned int id);
struct net *rfw_genl_info_net(const struct genl_info *info);

void __percpu *rfw_alloc_percpu(size_t size, size_t align);
void rfw_this_cpu_add_u64(u64 __percpu *counter, u64 value);
void *rfw_per_cpu_ptr(void __percpu *ptr, int cpu);
int rfw_next_possible_cpu(int cpu);
unsigned int rfw_nr_cpu_ids(void);

size_t rfw_nlmsg_default_size(void);
struct sk_buff *rfw_genlmsg_new(size_t payload, gfp_t flags);
void *rfw_genlmsg_put_reply(struct sk_buff *skb, struct genl_info *info,
			    const struct genl_family *family, int flags, u8 cmd);
void rfw_genlmsg_end(struct sk_buff *skb, void *hdr);
int rfw_genlmsg_reply(struct sk_buff *skb, struct genl_info *info);
void rfw_nlmsg_free(struct sk_buff *skb);
struct nlattr *rfw_nla_nest_start(struct sk_buff *skb, int attrtype);
void rfw_nla_nest_end(struct sk_buff *skb, struct nlattr *start);
void rfw_nla_nest_cancel(struct sk_buff *skb, struct nlattr *start);
int rfw_nla_put_u8(struct sk_buff *skb, int attrtype, u8 value);
int rfw_nla_put_u64_64bit(struct sk_buff *skb, int attrtype, u64 value, int padattr);

#endif
