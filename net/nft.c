/* nftables through libnftables, dlopen'ed on first use: linked, it would map
 * libnftables, libnftnl, libmnl, jansson, gmp and xtables into every `hutch
 * run` (published ports are the rare case). hutch's rules live in one table of
 * its own, `table ip hutch` (with `table ip6 hutch` for dual stack networks),
 * replaced whole in one transaction from what is on disk, so a crash never
 * leaves half a table and the host's rules are never touched. */
#include <dlfcn.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <nftables/libnftables.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "net/link_internal.h"

/* the header for the types only: every call goes through these pointers */
static struct {
	bool loaded;
	__typeof__(nft_ctx_new) *ctx_new;
	__typeof__(nft_ctx_free) *ctx_free;
	__typeof__(nft_ctx_buffer_output) *buffer_output;
	__typeof__(nft_ctx_buffer_error) *buffer_error;
	__typeof__(nft_ctx_get_error_buffer) *get_error;
	__typeof__(nft_run_cmd_from_buffer) *run;
} nft;

static int nft_load(struct hutch_err **err)
{
	if (nft.loaded)
		return 0;
	void *lib = dlopen("libnftables.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		return hutch_fail(err, 0,
				  "published ports and outbound access need libnftables.so.1: "
				  "install Debian's libnftables1 (%s)",
				  dlerror());
	struct {
		const char *name;
		void **fn;
	} syms[] = {
	    {"nft_ctx_new", (void **)&nft.ctx_new},
	    {"nft_ctx_free", (void **)&nft.ctx_free},
	    {"nft_ctx_buffer_output", (void **)&nft.buffer_output},
	    {"nft_ctx_buffer_error", (void **)&nft.buffer_error},
	    {"nft_ctx_get_error_buffer", (void **)&nft.get_error},
	    {"nft_run_cmd_from_buffer", (void **)&nft.run},
	};
	for (size_t i = 0; i < ARRAY_SIZE(syms); i++) {
		*syms[i].fn = dlsym(lib, syms[i].name);
		if (!*syms[i].fn)
			return hutch_fail(err, 0, "libnftables.so.1 has no %s", syms[i].name);
	}
	nft.loaded = true;
	return 0;
}

int net_nft_apply(const char *ruleset, struct hutch_err **err)
{
	if (nft_load(err) < 0) {
		/* no library: no table of hutch's either, nothing to remove */
		if (!ruleset || !*ruleset) {
			hutch_err_free(err);
			return 0;
		}
		return -1;
	}
	struct nft_ctx *ctx = nft.ctx_new(0);
	if (!ctx)
		return hutch_fail(err, 0, "libnftables: cannot make a context");
	nft.buffer_output(ctx);
	nft.buffer_error(ctx);
	/* "add" first so that "delete" never fails on a missing table */
	_cleanup_free_ char *cmd =
	    xasprintf("add table ip hutch\ndelete table ip hutch\nadd table ip6 hutch\n"
		      "delete table ip6 hutch\n%s",
		      ruleset ? ruleset : "");
	int r = nft.run(ctx, cmd);
	if (r != 0) {
		const char *e = nft.get_error(ctx);
		hutch_fail(err, 0, "nftables refused hutch's rules: %s",
			   e && *e ? e : "(no message)");
		nft.ctx_free(ctx);
		return -1;
	}
	nft.ctx_free(ctx);
	return 0;
}

/* One NFT_MSG_GETTABLE on a netlink socket of its own: the check that runs on
 * every attach whose rules did not change, so it must not dlopen libnftables
 * (that is the cost the saved copy of the rules avoids). */
int net_nft_table_exists(struct hutch_err **err)
{
	_cleanup_close_ int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (fd < 0)
		return hutch_fail_sys(err, "open a netfilter netlink socket");
	static const char name[] = "hutch";
	struct {
		struct nlmsghdr nh;
		struct nfgenmsg nfg;
		struct nlattr na;
		char name[NLA_ALIGN(sizeof(name))];
	} req = {
	    .nh = {.nlmsg_len = sizeof(req),
		   .nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE,
		   .nlmsg_flags = NLM_F_REQUEST,
		   .nlmsg_seq = 1},
	    .nfg = {.nfgen_family = NFPROTO_IPV4, .version = NFNETLINK_V0},
	    .na = {.nla_len = NLA_HDRLEN + sizeof(name), .nla_type = NFTA_TABLE_NAME},
	};
	memcpy(req.name, name, sizeof(name));
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return hutch_fail_sys(err, "ask the kernel for table ip hutch");
	char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	if (n < 0)
		return hutch_fail_sys(err, "read the kernel's answer about table ip hutch");
	const struct nlmsghdr *nh = (const struct nlmsghdr *)buf;
	if (!NLMSG_OK(nh, (size_t)n))
		return hutch_fail(err, EPROTO, "a short answer about table ip hutch");
	if (nh->nlmsg_type == NLMSG_ERROR) {
		const struct nlmsgerr *e = NLMSG_DATA(nh);
		if (e->error == -ENOENT)
			return 0;
		errno = -e->error;
		return hutch_fail_sys(err, "ask the kernel for table ip hutch");
	}
	return nh->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE);
}
