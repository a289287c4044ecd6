/* cgroup v2: one cgroup per container under <unified>/hutch/. On a hybrid host
 * the unified hierarchy usually has no memory/cpu/pids controller (they are bound
 * to v1 hierarchies, which we never touch); we then run without those limits and
 * say so once. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "common/util.h"
#include "runtime/runtime_internal.h"

static const char *find_unified_mount(void)
{
	static const char *const candidates[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	for (size_t i = 0; i < ARRAY_SIZE(candidates); i++) {
		struct statfs sfs;
		if (statfs(candidates[i], &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC)
			return candidates[i];
	}
	return NULL;
}

static bool word_in(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

/* The controllers a container's limits may need, as bits of a mask. */
static const char *const controllers[] = {"memory",  "cpu",    "pids", "io",
					  "hugetlb", "cpuset", "rdma", "misc"};
enum { CTRL_MEMORY = 1u << 0, CTRL_CPU = 1u << 1, CTRL_PIDS = 1u << 2 };

/* The bit of the controller a cgroup file belongs to ("io.max": io), 0 for
 * cgroup.* files and names hutch does not enable (the write finds out). */
static unsigned controller_of(const char *file)
{
	size_t n = strcspn(file, ".");
	for (size_t i = 0; i < ARRAY_SIZE(controllers); i++)
		if (strlen(controllers[i]) == n && !strncmp(file, controllers[i], n))
			return 1u << i;
	return 0;
}

/* Enable the controllers in want in dir's subtree_control when dir offers
 * them and has not enabled them yet. Returns those of want now enabled. */
static unsigned enable_controllers(int dirfd, unsigned want)
{
	_cleanup_free_ char *avail = NULL, *enabled = NULL;
	if (read_file_at(dirfd, "cgroup.controllers", &avail, NULL, NULL) < 0)
		avail = xstrdup("");
	if (read_file_at(dirfd, "cgroup.subtree_control", &enabled, NULL, NULL) < 0)
		enabled = xstrdup("");
	unsigned have = 0;
	for (size_t i = 0; i < ARRAY_SIZE(controllers); i++) {
		if (!(want & (1u << i)))
			continue;
		if (word_in(enabled, controllers[i])) {
			have |= 1u << i;
			continue;
		}
		if (!word_in(avail, controllers[i]))
			continue;
		_cleanup_free_ char *cmd = xasprintf("+%s", controllers[i]);
		if (write_file_at(dirfd, "cgroup.subtree_control", cmd, NULL) == 0)
			have |= 1u << i;
	}
	return have;
}

/* The controllers the spec's limits need (0: no limits); *any: some limit at
 * all (a write of a cgroup.* file needs no controller). */
static unsigned wanted_controllers(const struct hutch_spec *spec, bool *any)
{
	const struct hutch_resources *r = &spec->resources;
	unsigned want = (r->memory_max ? CTRL_MEMORY : 0) |
			(r->cpu_quota_us || r->cpu_weight ? CTRL_CPU : 0) |
			(r->pids_max ? CTRL_PIDS : 0);
	for (size_t i = 0; i < r->n_writes; i++)
		want |= controller_of(r->writes[i].file);
	*any = want || r->n_writes;
	return want;
}

static bool wants_limits(const struct hutch_spec *spec)
{
	bool any;
	wanted_controllers(spec, &any);
	return any;
}

/* name, once, in the list of what is not enforced: a field path without
 * its index ("linux.resources.hugepageLimits[1]": hugepageLimits) */
static void add_missing(struct strbuf *b, const char *name)
{
	_cleanup_free_ char *n = xasprintf("%.*s", (int)strcspn(name, "["), name);
	_cleanup_free_ char *word = xasprintf(" %s ", n);
	_cleanup_free_ char *have = xasprintf("%s ", b->s ? b->s : "");
	if (!strstr(have, word))
		strbuf_addf(b, " %s", n);
}

/* have: the controllers the container's cgroup has (0: none, or no cgroup) */
static void warn_unenforced(const struct hutch_runtime *rt, const struct hutch_spec *spec,
			    unsigned have, const struct strbuf *more, const char *where)
{
	struct strbuf missing = {0};
	const struct hutch_resources *r = &spec->resources;
	/* named as the user gave them: hutch run's options, or an OCI bundle's fields */
	if (r->memory_max && !(have & CTRL_MEMORY))
		add_missing(&missing, spec->oci ? "linux.resources.memory.limit" : "--memory");
	if (r->cpu_quota_us && !(have & CTRL_CPU))
		add_missing(&missing, spec->oci ? "linux.resources.cpu.quota" : "--cpus");
	if (r->cpu_weight && !(have & CTRL_CPU))
		add_missing(&missing, "linux.resources.cpu.shares");
	if (r->pids_max && !(have & CTRL_PIDS))
		add_missing(&missing, spec->oci ? "linux.resources.pids.limit" : "--pids-limit");
	if (more && more->s)
		strbuf_adds(&missing, more->s);
	else if (!more) /* no cgroup: none of the writes is done */
		for (size_t i = 0; i < r->n_writes; i++)
			add_missing(&missing, r->writes[i].field);
	if (missing.s)
		hutch_runtime_log(rt, HUTCH_LOG_WARNING,
				  "not enforced:%s (%s). The container runs without these limits.",
				  missing.s, where);
	strbuf_fini(&missing);
}

/* Make and open <root>/hutch and enable the controllers in want in the
 * root's and the parent's subtree_control (*have: those enabled in both).
 * Returns the parent's fd or -errno. */
static int open_parent(int rootfd, unsigned want, unsigned *have)
{
	if (mkdirat(rootfd, "hutch", 0755) < 0 && errno != EEXIST)
		return -errno;
	int parentfd = openat(rootfd, "hutch", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parentfd < 0)
		return -errno;
	*have = 0;
	if (want)
		*have = enable_controllers(rootfd, want) & enable_controllers(parentfd, want);
	return parentfd;
}

int64_t cgroup_swap_max(const struct hutch_resources *res)
{
	if (!res->memory_max || res->memory_swap_max < 0)
		return -1; /* no memory limit, or unlimited swap: the kernel's "max" stays */
	/* Docker's --memory-swap is memory + swap; without it, twice --memory: the
	 * container may swap out as much as its memory limit. */
	int64_t total = res->memory_swap_max ? res->memory_swap_max : 2 * res->memory_max;
	return total > res->memory_max ? total - res->memory_max : 0;
}

int cgroup_plan(const struct hutch_runtime *rt, const struct hutch_spec *spec, struct cgroup *cg,
		struct hutch_err **err)
{
	*cg = (struct cgroup){.dirfd = -1};
	const char *unified = find_unified_mount();
	if (!unified) {
		if (wants_limits(spec))
			warn_unenforced(rt, spec, 0, NULL, "no cgroup v2 hierarchy is mounted");
		return 0;
	}
	if (!rt->rootless) {
		cg->path = xasprintf("%s/hutch/%s", unified, spec->id);
		return 0;
	}
	/* An unprivileged user has only the subtree it was delegated: its own
	 * cgroup (e.g. systemd's user@UID.service), if writable. */
	_cleanup_free_ char *base = NULL, *self = NULL;
	if (read_file_at(AT_FDCWD, "/proc/self/cgroup", &self, NULL, NULL) == 0) {
		char *line = strstr(self, "0::");
		if (line) {
			line += 3;
			line[strcspn(line, "\n")] = '\0';
			/* the leaf holds our own process: go one level up */
			char *slash = strrchr(line, '/');
			if (slash && slash != line)
				*slash = '\0';
			base = xasprintf("%s%s", unified, strcmp(line, "/") ? line : "");
		}
	}
	_cleanup_close_ int rootfd =
	    open(base ? base : unified, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return hutch_fail_sys(err, "open %s", base ? base : unified);
	if (!base || faccessat(rootfd, "cgroup.procs", W_OK, AT_EACCESS) < 0) {
		if (wants_limits(spec))
			warn_unenforced(rt, spec, 0, NULL,
					"no delegated cgroup v2 subtree for this user");
		return 0;
	}
	cg->path = xasprintf("%s/hutch/%s", base, spec->id);
	return 0;
}

static int apply_limits(const struct hutch_runtime *rt, const struct hutch_spec *spec,
			struct cgroup *cg, unsigned have, struct hutch_err **err);

int cgroup_create(const struct hutch_runtime *rt, const struct hutch_spec *spec, struct cgroup *cg,
		  struct hutch_err **err)
{
	if (!cg->path)
		return 0;
	/* cg->path is <root>/hutch/<id> (cgroup_plan) */
	_cleanup_free_ char *root = xasprintf(
	    "%.*s", (int)(strlen(cg->path) - strlen("/hutch/") - strlen(spec->id)), cg->path);
	_cleanup_close_ int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		int e = errno;
		cgroup_destroy(cg, NULL);
		return hutch_fail(err, e, "open %s", root);
	}
	bool any;
	unsigned want = wanted_controllers(spec, &any), have = 0;
	_cleanup_close_ int parentfd = -1;
	/* The last container's exit removes the shared hutch/ parent; a start racing
	 * that removal sees ENOENT for its own dir and sets the parent up again. */
	for (int attempt = 0;; attempt++) {
		int r = open_parent(rootfd, want, &have);
		if (r < 0 && rt->rootless && (-r == EACCES || -r == EPERM || -r == EROFS)) {
			/* Rootless without a writable subtree: no cgroup at all. */
			free(cg->path);
			cg->path = NULL;
			if (any)
				warn_unenforced(rt, spec, 0, NULL,
						"no writable cgroup v2 subtree for this user");
			return 0;
		}
		/* ENOENT: the parent went between its mkdir and its open */
		if (r == -ENOENT && attempt < 3)
			continue;
		if (r < 0) {
			cgroup_destroy(cg, NULL);
			return hutch_fail(err, -r, "create cgroup %s/hutch", root);
		}
		parentfd = r;
		if (mkdirat(parentfd, spec->id, 0755) == 0) {
			cg->made = true;
			break;
		}
		if (errno != ENOENT || attempt == 3) {
			int e = errno;
			free(cg->path); /* not ours: never remove it */
			cg->path = NULL;
			return hutch_fail(err, e, "create cgroup %s/hutch/%s", root, spec->id);
		}
		close(parentfd);
		parentfd = -1;
	}
	cg->dirfd = openat(parentfd, spec->id, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg->dirfd < 0) {
		int e = errno;
		cgroup_destroy(cg, NULL);
		return hutch_fail(err, e, "open cgroup %s", spec->id);
	}
	return apply_limits(rt, spec, cg, have, err);
}

/* The spec's limits in the new cgroup open at cg->dirfd (have: the
 * controllers it has); on failure the cgroup is removed. */
static int apply_limits(const struct hutch_runtime *rt, const struct hutch_spec *spec,
			struct cgroup *cg, unsigned have, struct hutch_err **err)
{
	bool mem = have & CTRL_MEMORY, cpu = have & CTRL_CPU, pids = have & CTRL_PIDS;
	cg->has_memory = mem;
	cg->has_cpu = cpu;
	cg->has_pids = pids;

	char buf[64];
	int r = 0;
	if (spec->resources.memory_max && mem) {
		snprintf(buf, sizeof(buf), "%" PRId64, spec->resources.memory_max);
		r = write_file_at(cg->dirfd, "memory.max", buf, err);
		int64_t swap = cgroup_swap_max(&spec->resources);
		if (r == 0 && swap >= 0) {
			snprintf(buf, sizeof(buf), "%" PRId64, swap);
			/* memory.swap.max is absent without swap accounting: not an error */
			write_file_at(cg->dirfd, "memory.swap.max", buf, NULL);
		}
	}
	if (r == 0 && spec->resources.cpu_quota_us && cpu) {
		snprintf(buf, sizeof(buf), "%" PRId64 " %" PRId64, spec->resources.cpu_quota_us,
			 spec->resources.cpu_period_us ? spec->resources.cpu_period_us : 100000);
		r = write_file_at(cg->dirfd, "cpu.max", buf, err);
	}
	if (r == 0 && spec->resources.cpu_weight && cpu) {
		snprintf(buf, sizeof(buf), "%" PRId64, spec->resources.cpu_weight);
		r = write_file_at(cg->dirfd, "cpu.weight", buf, err);
	}
	if (r == 0 && spec->resources.pids_max && pids) {
		snprintf(buf, sizeof(buf), "%" PRId64, spec->resources.pids_max);
		r = write_file_at(cg->dirfd, "pids.max", buf, err);
	}
	if (r < 0)
		hutch_err_wrap(err, "set cgroup limits");
	struct strbuf missing = {0};
	if (r == 0)
		r = cgroup_apply_writes(cg->dirfd, spec->resources.writes, spec->resources.n_writes,
					&missing, err);
	if (r < 0) {
		strbuf_fini(&missing);
		cgroup_destroy(cg, NULL);
		return -1;
	}
	if (wants_limits(spec))
		warn_unenforced(rt, spec, have, &missing,
				"cgroup v2 here lacks these controllers; on a hybrid host they "
				"belong to cgroup v1, which hutch never touches");
	strbuf_fini(&missing);
	return 0;
}

/* The host's hugepage sizes as the spec names them ("2MB 1GB"), for messages. */
static char *host_hugepage_sizes(void)
{
	struct strbuf b = {0};
	DIR *d = opendir("/sys/kernel/mm/hugepages");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		unsigned long long kib;
		char unit[4];
		if (sscanf(e->d_name, "hugepages-%llu%3s", &kib, unit) == 2 &&
		    !strcmp(unit, "kB")) {
			_cleanup_free_ char *n = cgroup_hugepage_name(kib);
			strbuf_addf(&b, "%s%s", b.s ? " " : "", n);
		}
	}
	if (d)
		closedir(d);
	return b.s ? strbuf_steal(&b) : xstrdup("none");
}

/* One write: each line of value to file (or to alt_file, with alt_value,
 * where file does not exist). 1: done, 0: skipped (optional), -1: err. */
static int write_one(int dirfd, const struct hutch_cgroup_write *w, struct hutch_err **err)
{
	const char *file = w->file, *value = w->value;
	if (faccessat(dirfd, file, F_OK, 0) < 0 && w->alt_file &&
	    faccessat(dirfd, w->alt_file, F_OK, 0) == 0) {
		file = w->alt_file;
		value = w->alt_value;
	}
	_cleanup_close_ int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && w->optional)
		return 0;
	if (fd < 0 && errno == ENOENT) {
		_cleanup_free_ char *sizes =
		    !strncmp(file, "hugetlb.", 8) ? host_hugepage_sizes() : NULL;
		return hutch_fail(err, 0, "%s: the container's cgroup has no file %s%s%s%s",
				  w->field, file, sizes ? " (this host's hugepage sizes: " : "",
				  sizes ? sizes : "", sizes ? ")" : "");
	}
	if (fd < 0)
		return hutch_fail_sys(err, "%s: open %s of the container's cgroup", w->field, file);
	for (const char *p = value; *p;) {
		size_t n = strcspn(p, "\n");
		if (n && write(fd, p, n) != (ssize_t)n) {
			int e = errno;
			_cleanup_free_ char *line = printable(p, n);
			return hutch_fail(err, e, "%s: the kernel refused '%s' for %s", w->field,
					  line, file);
		}
		p += n + (p[n] == '\n');
	}
	return 1;
}

int cgroup_apply_writes(int dirfd, const struct hutch_cgroup_write *w, size_t n,
			struct strbuf *missing, struct hutch_err **err)
{
	_cleanup_free_ char *ctrls = NULL;
	if (n && read_file_at(dirfd, "cgroup.controllers", &ctrls, NULL, NULL) < 0)
		ctrls = xstrdup("");
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *ctl =
		    xasprintf("%.*s", (int)strcspn(w[i].file, "."), w[i].file);
		if (strcmp(ctl, "cgroup") && !word_in(ctrls, ctl)) {
			if (missing && !w[i].strict) {
				add_missing(missing, w[i].field);
				continue;
			}
			ctrls[strcspn(ctrls, "\n")] = '\0';
			return hutch_fail(err, 0,
					  "%s cannot be set here: the container's cgroup has no %s "
					  "controller (it has %s%s)",
					  w[i].field, ctl, *ctrls ? ctrls : "none",
					  *ctrls ? ""
						 : "; on a hybrid host the controllers belong "
						   "to cgroup v1, which hutch never touches");
		}
		if (write_one(dirfd, &w[i], err) < 0)
			return -1;
	}
	return 0;
}

void cgroup_enable_for(const char *path, const struct hutch_resources *r)
{
	unsigned want = (r->memory_max >= 0 ? CTRL_MEMORY : 0) |
			(r->cpu_quota_us >= 0 ? CTRL_CPU : 0) | (r->pids_max >= 0 ? CTRL_PIDS : 0);
	for (size_t i = 0; i < r->n_writes; i++)
		want |= controller_of(r->writes[i].file);
	const char *unified = find_unified_mount();
	size_t ul = unified ? strlen(unified) : 0;
	if (!want || !unified || strncmp(path, unified, ul) || path[ul] != '/')
		return;
	int fd = open(unified, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* each ancestor's subtree_control, root first; the leaf's own is not
	 * touched (its processes are in it) */
	for (const char *p = path + ul + 1; fd >= 0 && *p;) {
		size_t n = strcspn(p, "/");
		if (!p[n])
			break;
		enable_controllers(fd, want);
		_cleanup_free_ char *name = xasprintf("%.*s", (int)n, p);
		int next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = next;
		p += n + 1;
	}
	if (fd >= 0) {
		enable_controllers(fd, want);
		close(fd);
	}
}

uint64_t cgroup_io_weight(uint64_t w)
{
	if (w < 10)
		w = 10;
	if (w > 1000)
		w = 1000;
	return 1 + (w - 10) * 9999 / 990;
}

char *cgroup_device_line(uint64_t major, uint64_t minor, const char *key, uint64_t value)
{
	if (!key)
		return xasprintf("%" PRIu64 ":%" PRIu64 " %" PRIu64, major, minor, value);
	if (!value)
		return xasprintf("%" PRIu64 ":%" PRIu64 " %s=max", major, minor, key);
	return xasprintf("%" PRIu64 ":%" PRIu64 " %s=%" PRIu64, major, minor, key, value);
}

bool cgroup_hugepage_size_ok(const char *name)
{
	size_t digits = strspn(name, "0123456789");
	if (!digits || digits > 12 || name[0] == '0')
		return false;
	const char *u = name + digits;
	return !strcmp(u, "KB") || !strcmp(u, "MB") || !strcmp(u, "GB");
}

char *cgroup_hugepage_name(uint64_t kib)
{
	/* the kernel's hugetlb_cgroup names: the largest unit that divides it */
	if (kib && kib % (1024 * 1024) == 0)
		return xasprintf("%" PRIu64 "GB", kib / (1024 * 1024));
	if (kib && kib % 1024 == 0)
		return xasprintf("%" PRIu64 "MB", kib / 1024);
	return xasprintf("%" PRIu64 "KB", kib);
}

bool cgroup_cpu_list_ok(const char *list)
{
	/* N or N-M, comma-separated, M >= N */
	const char *p = list;
	if (!*p)
		return false;
	for (;;) {
		char *end;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		unsigned long a = strtoul(p, &end, 10), b = a;
		if (*end == '-') {
			p = end + 1;
			if (!(*p >= '0' && *p <= '9'))
				return false;
			b = strtoul(p, &end, 10);
		}
		if (b < a || a > 1u << 20 || b > 1u << 20)
			return false;
		if (!*end)
			return true;
		if (*end != ',')
			return false;
		p = end + 1;
	}
}

const char *cgroup_unified_key_problem(const char *key)
{
	if (!*key)
		return "an empty name";
	if (strchr(key, '/'))
		return "a file name has no '/'";
	if (!strcmp(key, ".") || !strcmp(key, "..") || strstr(key, ".."))
		return "'.' and '..' are not files of the cgroup";
	size_t dot = strcspn(key, ".");
	if (!key[dot] || dot == 0 || !key[dot + 1])
		return "not CONTROLLER.NAME (memory.high, io.max, cgroup.freeze)";
	for (const char *p = key; *p; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && *p != '.' && *p != '_' && *p != '-')
			return "not a cgroup file name (letters, digits, '.', '_', '-')";
	/* not limits: they would move processes of the host into the container's
	 * cgroup (which delete kills), kill them, or give the leaf children */
	static const char *const managed[] = {"cgroup.procs", "cgroup.threads", "cgroup.kill",
					      "cgroup.subtree_control"};
	for (size_t i = 0; i < ARRAY_SIZE(managed); i++)
		if (!strcmp(key, managed[i]))
			return "hutch manages the container's processes and its cgroup's place "
			       "in the hierarchy: not a limit to set";
	return NULL;
}

int64_t cgroup_oom_kills(const struct cgroup *cg)
{
	if (cg->dirfd < 0 || !cg->has_memory)
		return 0;
	_cleanup_free_ char *ev = NULL;
	if (read_file_at(cg->dirfd, "memory.events", &ev, NULL, NULL) < 0)
		return 0;
	const char *p = strstr(ev, "oom_kill ");
	return p ? strtoll(p + 9, NULL, 10) : 0;
}

/* The container's processes are gone when pid 1 has been reaped, but the kernel
 * may still be tearing the last ones down: wait for "populated 0" by polling the
 * events file for change notifications (POLLPRI), not by sleeping. */
static void wait_unpopulated(int dirfd)
{
	_cleanup_close_ int fd = openat(dirfd, "cgroup.events", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	for (int round = 0; round < 50; round++) {
		char buf[256];
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			return;
		buf[n] = '\0';
		if (strstr(buf, "populated 0"))
			return;
		struct pollfd pfd = {.fd = fd, .events = POLLPRI};
		if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			return;
	}
}

int cgroup_remove(const char *path, struct hutch_err **err)
{
	/* only ever .../hutch/<64 hex>: a record's path is not trusted further */
	const char *leaf = strrchr(path, '/');
	if (!leaf || strlen(leaf + 1) != 64 || !is_hex_string(leaf + 1, 64) || leaf - path < 6 ||
	    strncmp(leaf - 6, "/hutch", 6))
		return hutch_fail(err, EINVAL, "'%s' is not a container cgroup of hutch", path);
	if (rmdir(path) < 0 && errno != ENOENT) {
		if (errno != EBUSY)
			return hutch_fail_sys(err, "remove cgroup %s", path);
		_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0)
			wait_unpopulated(fd);
		if (rmdir(path) < 0 && errno != ENOENT)
			return hutch_fail_sys(err, "remove cgroup %s", path);
	}
	/* Leave nothing behind: the shared hutch/ parent goes with the last
	 * container (EBUSY while others run; they remove it later). */
	_cleanup_free_ char *parent = xasprintf("%.*s", (int)(leaf - path), path);
	rmdir(parent);
	return 0;
}

/* "hutch/<id>" as the last two components of rel, every component a plain name */
static bool rel_ends_in_container(const char *rel, const char *id, bool whole)
{
	_cleanup_free_ char *want = xasprintf("hutch/%s", id);
	size_t rl = strlen(rel), wl = strlen(want);
	if (whole)
		return !strcmp(rel, want);
	if (rl < wl || strcmp(rel + rl - wl, want) || (rl > wl && rel[rl - wl - 1] != '/'))
		return false;
	for (const char *p = rel; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && !strncmp(p, "..", 2)))
			return false;
		p += n + (p[n] == '/');
	}
	return rel[rl - 1] != '/';
}

int cgroup_open_record(const struct hutch_runtime *rt, const char *path, const char *id,
		       struct hutch_err **err)
{
	const char *unified = find_unified_mount();
	size_t ul = unified ? strlen(unified) : 0;
	/* Root's cgroups are all <mount>/hutch/<id>, a rootless user's only end so
	 * (the subtree delegated to it differs by session). */
	if (!unified || strncmp(path, unified, ul) || path[ul] != '/' ||
	    !rel_ends_in_container(path + ul + 1, id, !rt->rootless)) {
		hutch_fail(err, 0,
			   "the record of container %.12s names the cgroup '%s', which is not "
			   "the container's (%s/%shutch/%.12s...)",
			   id, path, unified ? unified : "<cgroup v2 mount>",
			   rt->rootless ? ".../" : "", id);
		errno = EPERM;
		return -1;
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		hutch_fail(err, e, "open the cgroup %s of container %.12s", path, id);
		errno = e;
		return -1;
	}
	/* what cgroup_create made: a cgroup v2 directory of this user's */
	struct statfs sfs;
	struct stat st;
	if (fstatfs(fd, &sfs) < 0 || sfs.f_type != CGROUP2_SUPER_MAGIC || fstat(fd, &st) < 0 ||
	    st.st_uid != geteuid()) {
		close(fd);
		hutch_fail(err, 0,
			   "the record of container %.12s names '%s', which is not a cgroup v2 "
			   "cgroup of uid %u",
			   id, path, (unsigned)geteuid());
		errno = EPERM;
		return -1;
	}
	return fd;
}

int cgroup_destroy(struct cgroup *cg, struct hutch_err **err)
{
	if (cg->dirfd >= 0)
		close(cg->dirfd);
	cg->dirfd = -1;
	/* a planned cgroup never made is not ours to remove (nor is the shared
	 * parent, which a start racing us may be about to use) */
	int ret = 0;
	if (cg->path && cg->made)
		ret = cg->at_path ? cgroup_remove_at(cg->path, err) : cgroup_remove(cg->path, err);
	free(cg->path);
	cg->path = NULL;
	cg->made = false;
	return ret;
}

int cgroup_create_at(const struct hutch_runtime *rt, const struct hutch_spec *spec, const char *rel,
		     struct cgroup *cg, struct hutch_err **err)
{
	*cg = (struct cgroup){.dirfd = -1};
	const char *unified = find_unified_mount();
	if (!unified || rt->rootless)
		return 0;
	_cleanup_free_ char *copy = xstrdup(rel);
	char *parts[32], *save = NULL;
	size_t n = 0;
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (n == ARRAY_SIZE(parts) || !strcmp(c, ".") || !strcmp(c, ".."))
			return hutch_fail(err, 0,
					  "cgroup path '%s': give at most 32 plain names, "
					  "without '.' or '..'",
					  rel);
		parts[n++] = c;
	}
	if (!n)
		return hutch_fail(err, 0, "cgroup path '%s' names no cgroup", rel);
	int fd = open(unified, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return hutch_fail_sys(err, "open %s", unified);
	bool any;
	unsigned want = wanted_controllers(spec, &any), have = want;
	for (size_t i = 0; i < n; i++) {
		if (want)
			have &= enable_controllers(fd, want);
		/* the parents may be there (a pod's, an engine's slice); the leaf is
		 * made new, never one that is not hutch's */
		bool leaf = i + 1 == n;
		if (mkdirat(fd, parts[i], 0755) < 0 && (leaf || errno != EEXIST)) {
			int e = errno;
			close(fd);
			if (e == EACCES || e == EPERM || e == EROFS)
				return 0; /* not ours to make: the caller's own place then */
			return hutch_fail(err, e, "create cgroup %s/%s%s", unified, rel,
					  e == EEXIST ? ": it exists, and is not hutch's to use"
						      : "");
		}
		int next = openat(fd, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (leaf) {
			cg->made = cg->at_path = true;
			cg->path = xasprintf("%s", unified);
			for (size_t k = 0; k < n; k++) {
				char *p = xasprintf("%s/%s", cg->path, parts[k]);
				free(cg->path);
				cg->path = p;
			}
			cg->dirfd = next;
		}
		if (next < 0) {
			int e = errno;
			cgroup_destroy(cg, NULL);
			return hutch_fail(err, e, "open cgroup %s/%s", unified, rel);
		}
		fd = next;
	}
	if (apply_limits(rt, spec, cg, have, err) < 0)
		return -1;
	return 1;
}

int cgroup_remove_at(const char *path, struct hutch_err **err)
{
	const char *unified = find_unified_mount();
	size_t ul = unified ? strlen(unified) : 0;
	size_t pl = strlen(path);
	if (!unified || strncmp(path, unified, ul) || path[ul] != '/' || !path[ul + 1] ||
	    strstr(path, "/../") || strstr(path, "/./") || strstr(path, "//") ||
	    (pl >= 3 && !strcmp(path + pl - 3, "/..")) || (pl >= 2 && !strcmp(path + pl - 2, "/.")))
		return hutch_fail(err, EINVAL, "'%s' is not a cgroup v2 path", path);
	if (rmdir(path) < 0 && errno != ENOENT) {
		if (errno != EBUSY)
			return hutch_fail_sys(err, "remove cgroup %s", path);
		_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0)
			wait_unpopulated(fd);
		if (rmdir(path) < 0 && errno != ENOENT)
			return hutch_fail_sys(err, "remove cgroup %s", path);
	}
	return 0;
}

char *cgroup_path_at(const char *rel)
{
	const char *unified = find_unified_mount();
	return unified ? xasprintf("%s/%s", unified, rel + strspn(rel, "/")) : NULL;
}
