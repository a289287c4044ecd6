/* --user resolution against the container's /etc/passwd and /etc/group, read
 * after pivot_root so the image's files are the ones consulted. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "common/util.h"
#include "runtime/runtime_internal.h"

static bool parse_id(const char *s, unsigned long *out)
{
	if (!*s || !isdigit((unsigned char)*s))
		return false;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v > 0xfffffffeUL)
		return false;
	*out = v;
	return true;
}

/* Split the next line of content into up to max ':'-separated fields (in place
 * in a copy); returns the field count, 0 at the end. */
static size_t next_record(const char **cursor, char *line, size_t cap, char **fields, size_t max)
{
	const char *p = *cursor;
	while (*p == '\n')
		p++;
	if (!*p)
		return 0;
	const char *nl = strchr(p, '\n');
	size_t len = nl ? (size_t)(nl - p) : strlen(p);
	*cursor = p + len;
	if (len >= cap)
		len = cap - 1;
	memcpy(line, p, len);
	line[len] = '\0';
	size_t n = 0;
	char *s = line;
	while (n < max) {
		fields[n++] = s;
		char *c = strchr(s, ':');
		if (!c)
			break;
		*c = '\0';
		s = c + 1;
	}
	return n;
}

int passwd_lookup(const char *content, const char *name_or_uid, uid_t *uid, gid_t *gid,
		  char **home)
{
	unsigned long want = 0;
	bool numeric = parse_id(name_or_uid, &want);
	const char *cur = content;
	char line[1024];
	char *f[7];
	size_t n;
	while ((n = next_record(&cur, line, sizeof(line), f, 7))) {
		if (n < 7 || f[0][0] == '#')
			continue;
		unsigned long u, g;
		if (!parse_id(f[2], &u) || !parse_id(f[3], &g))
			continue;
		if (numeric ? u != want : strcmp(f[0], name_or_uid) != 0)
			continue;
		*uid = (uid_t)u;
		*gid = (gid_t)g;
		if (home)
			*home = xstrdup(f[5]);
		return 0;
	}
	return -1;
}

int group_lookup(const char *content, const char *name_or_gid, gid_t *gid)
{
	unsigned long want = 0;
	bool numeric = parse_id(name_or_gid, &want);
	const char *cur = content;
	char line[4096];
	char *f[4];
	size_t n;
	while ((n = next_record(&cur, line, sizeof(line), f, 4))) {
		if (n < 3 || f[0][0] == '#')
			continue;
		unsigned long g;
		if (!parse_id(f[2], &g))
			continue;
		if (numeric ? g != want : strcmp(f[0], name_or_gid) != 0)
			continue;
		*gid = (gid_t)g;
		return 0;
	}
	return -1;
}

size_t group_members(const char *content, const char *user, gid_t primary, gid_t **out)
{
	size_t count = 0;
	gid_t *groups = NULL;
	const char *cur = content;
	char line[4096];
	char *f[4];
	size_t n;
	while ((n = next_record(&cur, line, sizeof(line), f, 4))) {
		unsigned long g;
		if (n < 4 || f[0][0] == '#' || !parse_id(f[2], &g) || g == primary)
			continue;
		char *save = NULL;
		for (char *m = strtok_r(f[3], ",", &save); m; m = strtok_r(NULL, ",", &save)) {
			if (strcmp(m, user))
				continue;
			groups = xrealloc(groups, (count + 1) * sizeof(gid_t));
			groups[count++] = (gid_t)g;
			break;
		}
	}
	*out = groups;
	return count;
}

int user_resolve(const char *spec_user, struct user_ids *out, struct hutch_err **err)
{
	*out = (struct user_ids){0};
	_cleanup_free_ char *passwd = NULL, *group = NULL;
	/* A missing /etc/passwd is fine for numeric ids (scratch-like images). */
	if (read_file_at(AT_FDCWD, "/etc/passwd", &passwd, NULL, NULL) < 0)
		passwd = xstrdup("");
	if (read_file_at(AT_FDCWD, "/etc/group", &group, NULL, NULL) < 0)
		group = xstrdup("");

	_cleanup_free_ char *copy = xstrdup(spec_user && *spec_user ? spec_user : "0");
	char *grp = strchr(copy, ':');
	if (grp)
		*grp++ = '\0';
	const char *usr = copy;

	unsigned long num;
	char *home = NULL;
	uid_t uid = 0;
	gid_t gid = 0;
	bool found = passwd_lookup(passwd, usr, &uid, &gid, &home) == 0;
	if (!found) {
		if (!parse_id(usr, &num))
			return hutch_fail(err, 0,
					  "unable to find user '%s': no matching entry in the "
					  "container's /etc/passwd",
					  usr);
		uid = (uid_t)num;
		gid = 0;
	}
	if (grp && *grp) {
		if (group_lookup(group, grp, &gid) < 0) {
			if (!parse_id(grp, &num))
				return hutch_fail(err, 0,
						  "unable to find group '%s': no matching entry in "
						  "the container's /etc/group",
						  grp);
			gid = (gid_t)num;
		}
	}
	out->uid = uid;
	out->gid = gid;
	out->home = home ? home : xstrdup("/");
	/* Supplementary groups: only when the user has a name (Docker's behaviour);
	 * an explicit group replaces them. */
	if (found && !(grp && *grp)) {
		const char *name = usr;
		_cleanup_free_ char *resolved = NULL;
		if (parse_id(usr, &num)) {
			/* look the name up for membership lists */
			const char *cur = passwd;
			char line[1024];
			char *f[7];
			size_t n;
			while ((n = next_record(&cur, line, sizeof(line), f, 7)))
				if (n >= 3 && parse_id(f[2], &num) && num == uid) {
					resolved = xstrdup(f[0]);
					break;
				}
			name = resolved;
		}
		if (name)
			out->n_groups = group_members(group, name, gid, &out->groups);
	}
	return 0;
}

void user_ids_free(struct user_ids *u)
{
	free(u->groups);
	free(u->home);
	*u = (struct user_ids){0};
}
