/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What bindgen turns into kmod/bindings_generated.rs (see ../Kbuild): the
 * kernel interfaces rfw.ko uses and the 6.12 `kernel` crate does not wrap
 * (netfilter hooks, pernet operations, generic netlink, per-CPU memory).
 */
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <linux/percpu.h>
#include <linux/random.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/mutex.h>
#include <linux/workqueue.h>
#include <linux/skbuff.h>
#include <net/genetlink.h>
#include <net/net_namespace.h>
#include <net/netlink.h>
#include <linux/netlink.h>
#include <linux/inetdevice.h>
#include <net/addrconf.h>
#include <net/netfilter/ipv4/nf_reject.h>
#include <net/netfilter/ipv6/nf_reject.h>
#include <net/route.h>
#include <net/if_inet6.h>
#include <linux/notifier.h>
#include <net/netfilter/ipv4/nf_defrag_ipv4.h>
#include <net/netfilter/ipv6/nf_defrag_ipv6.h>

#include "helpers.h"
