// SPDX-License-Identifier: GPL-2.0
/*
 * rfw.ko: one-line wrappers around `static inline` kernel functions and
 * macros, for the Rust side (see helpers.h). Nothing here decides anything.
 */
#include <linux/cpumask.h>
#include <linux/percpu.h>
#include <net/genetlink.h>
#include <net/netlink.h>
#include <net/netns/generic.h>

#include "helpers.h"

void *rfw_net_generic(const struct net *net, unsigned int id)
{
	return net_generic(net, id);
}

struct net *rfw_genl_info_net(const struct genl_info *info)
{
	return genl_info_net(info);
}

void __percpu *rfw_alloc_percpu(size_t size, size_t align)
{
	return __alloc_percpu_gfp(size, align, GFP_KERNEL);
}

void rfw_this_cpu_add_u64(u64 __percpu *counter, u64 value)
{
	this_cpu_add(*counter, value);
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

struct sk_buff *rfw_genlmsg_new(size_t payload, gfp_t flags)
{
	return genlmsg_new(payload, flags);
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

void rfw_nla_nest_cancel(struct sk_buff *skb, struct nlattr *start)
{
	nla_nest_cancel(skb, start);
}

int rfw_nla_put_u8(struct sk_buff *skb, int attrtype, u8 value)
{
	return nla_put_u8(skb, attrtype, value);
}

int rfw_nla_put_u64_64bit(struct sk_buff *skb, int attrtype, u64 value, int padattr)
{
	return nla_put_u64_64bit(skb, attrtype, value, padattr);
}
