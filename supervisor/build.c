/* A service's settings -> a container spec, through the runtime's option
 * setters (the ones `hutch run`'s flags use), so that a stack key and the flag
 * of the same meaning are one code path with one message; here the message
 * gets the file, line and key in front. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/sha256.h"
#include "common/util.h"
#include "images/images.h"
#include "net/net.h"
#include "supervisor/sup_internal.h"

/* STACK-SERVICE-N as compose names them, or the service's container_name
 * (one replica only: the loader refuses it with more). */
char *sup_container_name(const char *stack, const struct stack_service *svc, unsigned replica)
{
	const struct stack_option *given = stack_service_option(svc, "container_name");
	if (given && given->text && *given->text)
		return xstrdup(given->text);
	return xasprintf("%s-%s-%u", stack, svc->name, replica);
}

int sup_labels_match(char *const *labels, size_t n, const char *stack, const char **service,
		     unsigned *replica)
{
	const char *st = hutch_label_get(labels, n, SUP_LABEL_STACK);
	const char *svc = hutch_label_get(labels, n, SUP_LABEL_SERVICE);
	const char *rep = hutch_label_get(labels, n, SUP_LABEL_REPLICA);
	if (!st || !svc || !rep || strcmp(st, stack) || !*svc)
		return 0;
	char *end;
	errno = 0;
	unsigned long r = strtoul(rep, &end, 10);
	if (errno || *end || end == rep || r == 0 || r > STACK_REPLICAS_MAX || *rep == '0' ||
	    *rep == '-' || *rep == '+' || *rep == ' ')
		return 0;
	*service = svc;
	*replica = (unsigned)r;
	return 1;
}

/* Each field with its name and a separator no value holds unescaped, so that
 * two different settings never hash the same. */
static void hash_str(struct sha256_ctx *c, const char *tag, const char *s)
{
	sha256_update(c, tag, strlen(tag) + 1);
	if (s)
		sha256_update(c, s, strlen(s) + 1);
	else
		sha256_update(c, "\xff", 1);
}

static void hash_strv(struct sha256_ctx *c, const char *tag, char *const *v, size_t n)
{
	char num[32];
	snprintf(num, sizeof(num), "%zu", v ? n : (size_t)-1);
	hash_str(c, tag, num);
	for (size_t i = 0; v && i < n; i++)
		hash_str(c, "", v[i]);
}

static void hash_int(struct sha256_ctx *c, const char *tag, int64_t v)
{
	char num[32];
	snprintf(num, sizeof(num), "%lld", (long long)v);
	hash_str(c, tag, num);
}

void sup_config_hash(const struct stack_service *svc, const char *image_id, char out[17])
{
	struct sha256_ctx c;
	sha256_init(&c);
	hash_str(&c, "image", svc->image);
	hash_str(&c, "image_id", image_id);
	hash_strv(&c, "command", svc->command, svc->n_command);
	hash_int(&c, "has_entrypoint", svc->has_entrypoint);
	hash_strv(&c, "entrypoint", svc->has_entrypoint ? svc->entrypoint : NULL,
		  svc->n_entrypoint);
	hash_strv(&c, "env", svc->env, svc->n_env);
	const struct stack_health *h = &svc->health;
	hash_int(&c, "health", h->kind);
	hash_strv(&c, "health_cmd", h->cmd, h->n_cmd);
	hash_int(&c, "port", h->port);
	hash_str(&c, "http_host", h->http_host);
	hash_str(&c, "http_path", h->http_path);
	hash_int(&c, "interval", h->interval_ns);
	hash_int(&c, "timeout", h->timeout_ns);
	hash_int(&c, "start_period", h->start_period_ns);
	hash_int(&c, "start_interval", h->start_interval_ns);
	hash_int(&c, "retries", h->retries);
	hash_int(&c, "restart", svc->restart);
	hash_int(&c, "restart_max", svc->restart_max);
	hash_int(&c, "stop_grace", svc->stop_grace_ns);
	hash_int(&c, "notify", svc->notify);
	/* replicas and depends_on are the supervisor's business: changing them
	 * does not make a running container different */
	for (size_t i = 0; i < svc->n_options; i++) {
		const struct stack_option *o = &svc->options[i];
		hash_str(&c, "option", o->key);
		hash_int(&c, "kind", o->kind);
		if (o->kind == STACK_OPT_FLAG)
			hash_int(&c, "flag", o->flag);
		else if (o->kind == STACK_OPT_LIST)
			hash_strv(&c, "words", o->words, o->n_words);
		else
			hash_str(&c, "text", o->text);
	}
	uint8_t d[SHA256_DIGEST_LEN];
	sha256_final(&c, d);
	char hex[SHA256_HEX_LEN + 1];
	sha256_hex(d, hex);
	memcpy(out, hex, 16);
	out[16] = '\0';
}

/* "FILE:LINE: KEY: " in front of the runtime's message. */
static int at(struct hutch_err **err, const struct sup_build_ctx *b, int line, const char *key)
{
	return hutch_err_wrap(err, "%s:%d: %s", b->stack->file, line, key);
}

/* The same for an option: its own file (an override file's key). */
static int at_opt(struct hutch_err **err, const struct sup_build_ctx *b,
		  const struct stack_option *o, const char *key)
{
	return hutch_err_wrap(err, "%s:%d: %s", o->file ? o->file : b->stack->file, o->line, key);
}

typedef int setter_fn(struct hutch_spec *, const char *, struct hutch_err **);

static int opt_text(const struct sup_build_ctx *b, const struct stack_service *svc,
		    struct hutch_spec *spec, const char *key, setter_fn *set,
		    struct hutch_err **err)
{
	const struct stack_option *o = stack_service_option(svc, key);
	if (o && set(spec, o->text, err) < 0)
		return at_opt(err, b, o, key);
	return 0;
}

static int opt_list(const struct sup_build_ctx *b, const struct stack_service *svc,
		    struct hutch_spec *spec, const char *key, setter_fn *set,
		    struct hutch_err **err)
{
	const struct stack_option *o = stack_service_option(svc, key);
	for (size_t i = 0; o && i < o->n_words; i++)
		if (set(spec, o->words[i], err) < 0)
			return at_opt(err, b, o, key);
	return 0;
}

static bool opt_flag(const struct stack_service *svc, const char *key)
{
	const struct stack_option *o = stack_service_option(svc, key);
	return o && o->flag;
}

static int dns_server(struct hutch_spec *s, const char *v, struct hutch_err **e)
{
	return hutch_spec_add_dns_server(s, v, e);
}
static int dns_search(struct hutch_spec *s, const char *v, struct hutch_err **e)
{
	return hutch_spec_add_dns_search(s, v, e);
}
static int dns_option(struct hutch_spec *s, const char *v, struct hutch_err **e)
{
	return hutch_spec_add_dns_option(s, v, e);
}

/* A named volume: a word before the first ':' that is no path ("pgdata"). */
static bool named_volume(const char *v, size_t *name_len)
{
	const char *colon = strchr(v, ':');
	if (!colon || colon == v || v[0] == '/' || v[0] == '.' || v[0] == '~')
		return false;
	for (const char *p = v; p < colon; p++)
		if (*p == '/')
			return false;
	*name_len = (size_t)(colon - v);
	return true;
}

static int add_volumes(const struct sup_build_ctx *b, const struct stack_service *svc,
		       struct hutch_spec *spec, bool check_only, struct hutch_err **err)
{
	const struct stack_option *o = stack_service_option(svc, "volumes");
	for (size_t i = 0; o && i < o->n_words; i++) {
		const char *v = o->words[i];
		size_t nlen;
		if (!named_volume(v, &nlen)) {
			if (hutch_spec_add_volume(spec, v, b->stack->dir, err) < 0)
				return at_opt(err, b, o, "volumes");
			continue;
		}
		_cleanup_free_ char *name = strndup(v, nlen);
		if (!hutch_name_valid(name) && !(nlen == 1 && isalnum((unsigned char)name[0]))) {
			_cleanup_free_ char *shown = printable(name, nlen);
			hutch_fail(err, 0,
				   "invalid volume name '%s': letters, digits and '_.-', starting "
				   "with a letter or digit (or a path: /abs or ./relative)",
				   shown);
			return at_opt(err, b, o, "volumes");
		}
		/* DATA/stacks/NAME/volumes/VOL, made at the first start; a check
		 * validates the rest of the word against a directory that exists */
		_cleanup_free_ char *dir =
		    check_only
			? xstrdup(b->data_root)
			: xasprintf("%s/stacks/%s/volumes/%s", b->data_root, b->stack->name, name);
		if (!check_only && mkdir_p_at(AT_FDCWD, dir, 0755, err) < 0)
			return at_opt(err, b, o, "volumes");
		_cleanup_free_ char *bind = xasprintf("%s%s", dir, v + nlen);
		if (hutch_spec_add_volume(spec, bind, NULL, err) < 0)
			return at_opt(err, b, o, "volumes");
	}
	return 0;
}

static int security_opts(const struct sup_build_ctx *b, const struct stack_service *svc,
			 struct hutch_spec *spec, struct hutch_err **err)
{
	const struct stack_option *o = stack_service_option(svc, "security_opt");
	for (size_t i = 0; o && i < o->n_words; i++) {
		const char *v = o->words[i];
		if (!strcmp(v, "seccomp=unconfined") || !strcmp(v, "seccomp:unconfined")) {
			spec->seccomp = HUTCH_SECCOMP_UNCONFINED;
		} else if (!strcmp(v, "no-new-privileges") ||
			   !strcmp(v, "no-new-privileges=true") ||
			   !strcmp(v, "no-new-privileges:true")) {
			spec->process.no_new_privileges = true;
		} else if (!strcmp(v, "no-new-privileges=false") ||
			   !strcmp(v, "no-new-privileges:false")) {
			spec->process.no_new_privileges = false;
		} else {
			_cleanup_free_ char *shown = printable(v, strlen(v));
			hutch_fail(err, 0,
				   "unsupported '%s' (supported: seccomp=unconfined, "
				   "no-new-privileges[=true|false])",
				   shown);
			return at_opt(err, b, o, "security_opt");
		}
	}
	return 0;
}

/* A service's published ports, as net/ reads them (the message names the value):
 * a fixed host port is one replica's, so a service with several publishes
 * container ports only (each replica gets a free host port). With the host's
 * network the service's ports are the host's anyway, as Docker has it. */
static int check_net_options(const struct sup_build_ctx *b, const struct stack_service *svc,
			     struct hutch_err **err)
{
	const struct stack_option *net = stack_service_option(svc, "network");
	bool host = net && net->text && !strcmp(net->text, "host");
	const struct stack_option *ports = stack_service_option(svc, "ports");
	for (size_t i = 0; ports && !host && i < ports->n_words; i++) {
		struct hutch_port_map p;
		if (hutch_port_parse(ports->words[i], &p, err) < 0)
			return at_opt(err, b, ports, "ports");
		if (p.host_port && svc->replicas > 1) {
			_cleanup_free_ char *shown =
			    printable(ports->words[i], strlen(ports->words[i]));
			hutch_fail(err, 0,
				   "'%s': service %s has %u replicas and one host port is one "
				   "replica's: publish the container port alone (like %u) and each "
				   "replica gets a free host port",
				   shown, svc->name, svc->replicas, p.container_port);
			return at_opt(err, b, ports, "ports");
		}
	}
	return 0;
}

static int build(const struct sup_build_ctx *b, const struct stack_service *svc, unsigned replica,
		 const char *id, const struct hutch_image *img, const char *hash, bool check_only,
		 struct hutch_spec *spec, struct hutch_err **err)
{
	spec->id = xstrdup(id);
	spec->detached = true;
	_cleanup_free_ char *name = sup_container_name(b->stack->name, svc, replica);
	hutch_spec_set_name(spec, name);
	const struct stack_option *labels = stack_service_option(svc, "labels");
	for (size_t i = 0; labels && i < labels->n_words; i++)
		hutch_spec_set_label(spec, labels->words[i]);
	_cleanup_free_ char *l1 = xasprintf("%s=%s", SUP_LABEL_STACK, b->stack->name);
	_cleanup_free_ char *l2 = xasprintf("%s=%s", SUP_LABEL_SERVICE, svc->name);
	_cleanup_free_ char *l3 = xasprintf("%s=%u", SUP_LABEL_REPLICA, replica);
	_cleanup_free_ char *l4 = xasprintf("%s=%s", SUP_LABEL_HASH, hash ? hash : "");
	hutch_spec_set_label(spec, l1);
	hutch_spec_set_label(spec, l2);
	hutch_spec_set_label(spec, l3);
	hutch_spec_set_label(spec, l4);

	const struct stack_option *wd = stack_service_option(svc, "workdir");
	const struct stack_option *user = stack_service_option(svc, "user");
	const struct stack_option *sig = stack_service_option(svc, "stop_signal");
	struct hutch_image_config cfg = {
	    .name = img->name,
	    .id = img->id,
	    .layers = img->layer_dirs,
	    .n_layers = img->n_layers,
	    .env = img->env,
	    .n_env = img->n_env,
	    .entrypoint = img->entrypoint,
	    .n_entrypoint = img->n_entrypoint,
	    .cmd = img->cmd,
	    .n_cmd = img->n_cmd,
	    .workdir = wd ? NULL : img->workdir,
	    .user = user ? NULL : img->user,
	    .stop_signal = sig ? NULL : img->stop_signal,
	};
	if (hutch_spec_apply_image(spec, &cfg, err) < 0)
		return at(err, b, svc->line, "image");
	const struct stack_option *host = stack_service_option(svc, "hostname");
	_cleanup_free_ char *short_id = strndup(id, 12);
	if (hutch_spec_set_hostname(spec, host ? host->text : short_id, err) < 0)
		return host ? at_opt(err, b, host, "hostname") : at(err, b, svc->line, "hostname");
	for (size_t i = 0; i < svc->n_env; i++)
		hutch_spec_set_env(spec, svc->env[i]);
	if (svc->notify) {
		hutch_spec_set_env(spec, "NOTIFY_SOCKET=" SUP_NOTIFY_PATH);
		if (!check_only && b->notify_dir) {
			_cleanup_free_ char *v = xasprintf("%s/%s-%u.sock:%s", b->notify_dir,
							   svc->name, replica, SUP_NOTIFY_PATH);
			if (hutch_spec_add_volume(spec, v, NULL, err) < 0)
				return at(err, b, svc->line, "notify");
		}
	}
	if (svc->has_entrypoint)
		hutch_spec_set_entrypoint(spec, svc->entrypoint, svc->n_entrypoint);
	if (svc->command)
		hutch_spec_set_command(spec, svc->command, svc->n_command);
	if (spec->process.n_args == 0) {
		hutch_fail(err, 0,
			   "no command: image '%s' has no Cmd or Entrypoint and the service "
			   "gives no command",
			   img->name);
		return at(err, b, svc->line, "command");
	}
	if (opt_text(b, svc, spec, "workdir", hutch_spec_set_workdir, err) < 0 ||
	    opt_text(b, svc, spec, "user", hutch_spec_set_user, err) < 0 ||
	    opt_text(b, svc, spec, "stop_signal", hutch_spec_set_stop_signal, err) < 0)
		return -1;
	spec->process.init = opt_flag(svc, "init");
	spec->root.readonly = opt_flag(svc, "read_only");
	if (opt_text(b, svc, spec, "memory", hutch_spec_set_memory, err) < 0 ||
	    opt_text(b, svc, spec, "memory_swap", hutch_spec_set_memory_swap, err) < 0 ||
	    opt_text(b, svc, spec, "cpus", hutch_spec_set_cpus, err) < 0 ||
	    opt_text(b, svc, spec, "pids", hutch_spec_set_pids_limit, err) < 0 ||
	    opt_list(b, svc, spec, "ulimits", hutch_spec_add_ulimit, err) < 0)
		return -1;
	if (hutch_spec_check_resources(&spec->resources, err) < 0) {
		const struct stack_option *o = stack_service_option(svc, "memory_swap");
		if (!o)
			o = stack_service_option(svc, "cpus");
		return o ? at_opt(err, b, o, o->key) : at(err, b, svc->line, "memory");
	}
	if (opt_list(b, svc, spec, "cap_drop", hutch_spec_cap_drop, err) < 0 ||
	    opt_list(b, svc, spec, "cap_add", hutch_spec_cap_add, err) < 0)
		return -1;
	if (opt_flag(svc, "privileged"))
		hutch_spec_set_privileged(spec);
	if (security_opts(b, svc, spec, err) < 0)
		return -1;
	if (opt_list(b, svc, spec, "device", hutch_spec_add_device, err) < 0)
		return -1;
	if (check_net_options(b, svc, err) < 0 ||
	    opt_text(b, svc, spec, "network", hutch_spec_set_network, err) < 0 ||
	    opt_list(b, svc, spec, "dns", dns_server, err) < 0 ||
	    opt_list(b, svc, spec, "dns_search", dns_search, err) < 0 ||
	    opt_list(b, svc, spec, "dns_option", dns_option, err) < 0 ||
	    opt_list(b, svc, spec, "add_host", hutch_spec_add_host_entry, err) < 0)
		return -1;
	if (add_volumes(b, svc, spec, check_only, err) < 0 ||
	    opt_list(b, svc, spec, "tmpfs", hutch_spec_add_tmpfs, err) < 0)
		return -1;
	if (hutch_spec_for_runtime(b->rt, spec, err) < 0)
		return at(err, b, svc->line, svc->name);
	if (hutch_spec_validate(spec, err) < 0)
		return hutch_err_wrap(err, "%s:%d: service %s", b->stack->file, svc->line,
				      svc->name);
	return 0;
}

int sup_build_spec(const struct sup_build_ctx *b, const struct stack_service *svc, unsigned replica,
		   const char *id, const struct hutch_image *img, const char *hash,
		   struct hutch_spec **out, struct hutch_err **err)
{
	struct hutch_spec *spec = hutch_spec_new();
	if (build(b, svc, replica, id, img, hash, false, spec, err) < 0) {
		hutch_spec_free(spec);
		return -1;
	}
	*out = spec;
	return 0;
}

static char *err_text(struct hutch_err *e)
{
	if (!e)
		return xstrdup("unknown error");
	if (e->errno_)
		return xasprintf("%s: %s", e->msg, strerror(e->errno_));
	return xstrdup(e->msg);
}

int sup_check_stack(const struct sup_build_ctx *b, struct hutch_store *store,
		    struct hutch_err **err)
{
	char *all = NULL;
	size_t n_bad = 0;
	for (size_t i = 0; i < b->stack->n_services; i++) {
		const struct stack_service *svc = &b->stack->services[i];
		struct hutch_err *e = NULL;
		struct hutch_image *img = NULL;
		if (hutch_image_get(store, svc->image, &img, &e) < 0) {
			hutch_err_wrap(&e, "%s:%d: image", b->stack->file, svc->line);
		} else {
			struct hutch_spec *spec = hutch_spec_new();
			build(b, svc, 1,
			      "0000000000000000000000000000000000000000000000000000000000000000",
			      img, NULL, true, spec, &e);
			hutch_spec_free(spec);
			hutch_image_free(img);
		}
		if (e) {
			_cleanup_free_ char *t = err_text(e);
			char *joined = all ? xasprintf("%s\n%s", all, t) : xstrdup(t);
			free(all);
			all = joined;
			n_bad++;
			hutch_err_free(&e);
		}
	}
	if (!n_bad)
		return 0;
	hutch_fail(err, 0, "%s", all);
	free(all);
	return -1;
}
