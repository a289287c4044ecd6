/* The DNS server's names table: built by the caller (or from a JSON file for the
 * standalone server), looked up per query with one hash and no allocation. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "net/dns_internal.h"

#define RECORDS_FILE_MAX (16u << 20)

struct hutch_dns_records *hutch_dns_records_new(void)
{
	return xcalloc(1, sizeof(struct hutch_dns_records));
}

void hutch_dns_records_free(struct hutch_dns_records *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_nets; i++) {
		struct dns_network *n = &r->nets[i];
		free(n->name);
		free(n->subnets);
		for (size_t z = 0; z < n->n_zones; z++)
			free(n->zones[z]);
		free(n->zones);
		for (size_t e = 0; e < n->n_entries; e++) {
			free(n->entries[e].name);
			free(n->entries[e].v4);
			free(n->entries[e].v6);
			free(n->entries[e].ptr);
		}
		free(n->entries);
		free(n->slots);
	}
	free(r->nets);
	free(r);
}

uint32_t dns_name_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

struct dns_entry *dns_find_entry(struct dns_network *net, const char *name, size_t len,
				 uint32_t hash)
{
	if (!net->n_slots)
		return NULL;
	size_t mask = net->n_slots - 1;
	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		uint32_t s = net->slots[i];
		if (!s)
			return NULL;
		struct dns_entry *e = &net->entries[s - 1];
		if (e->hash == hash && !memcmp(e->name, name, len) && e->name[len] == 0)
			return e;
	}
}

const char *dns_find_zone(const struct dns_network *net, const char *name, size_t len)
{
	for (size_t z = 0; z < net->n_zones; z++) {
		const char *zone = net->zones[z];
		size_t zl = strlen(zone);
		if (zl == len ? !memcmp(zone, name, len)
			      : zl < len && name[len - zl - 1] == '.' &&
				    !memcmp(zone, name + len - zl, zl))
			return zone;
	}
	return NULL;
}

bool dns_subnet_contains(const struct dns_subnet *s, int family, const uint8_t *addr)
{
	if (s->family != family)
		return false;
	unsigned full = s->prefix / 8, rest = s->prefix % 8;
	if (memcmp(s->addr, addr, full))
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (s->addr[full] & mask) == (addr[full] & mask);
}

static struct dns_network *network_at(struct hutch_dns_records *r, int i, struct hutch_err **err)
{
	if (i < 0 || (size_t)i >= r->n_nets) {
		hutch_fail(err, EINVAL, "DNS records: no network number %d", i);
		return NULL;
	}
	return &r->nets[i];
}

int hutch_dns_records_add_network(struct hutch_dns_records *r, const char *name,
				  struct hutch_err **err)
{
	if (r->n_nets >= 4096)
		return hutch_fail(err, 0, "DNS records: more than 4096 networks");
	r->nets = xrealloc(r->nets, (r->n_nets + 1) * sizeof(*r->nets));
	struct dns_network *n = &r->nets[r->n_nets];
	memset(n, 0, sizeof(*n));
	n->name = xstrdup(name ? name : "");
	return (int)r->n_nets++;
}

/* A name as the table keeps it: lowercase, no trailing dot, labels of 1-63 bytes of
 * letters, digits, '-' and '_', at most 253 characters. */
static int normalize_name(const char *in, char *out, size_t cap, const char *what,
			  struct hutch_err **err)
{
	size_t len = strlen(in);
	if (len && in[len - 1] == '.')
		len--;
	_cleanup_free_ char *shown = printable(in, strlen(in));
	if (len == 0 || len > 253 || len >= cap)
		return hutch_fail(err, EINVAL,
				  "DNS records: %s \"%s\" is not a DNS name (1 to 253 characters)",
				  what, shown);
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '.') {
			if (label == 0)
				return hutch_fail(err, EINVAL,
						  "DNS records: %s \"%s\" has an empty label", what,
						  shown);
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
			   c == '_') {
			label++;
		} else if (c >= 'A' && c <= 'Z') {
			c = (char)(c + 32);
			label++;
		} else {
			return hutch_fail(
			    err, EINVAL,
			    "DNS records: %s \"%s\" has a character a DNS name cannot "
			    "have (letters, digits, '-', '_' and dots only)",
			    what, shown);
		}
		if (label > DNS_MAX_LABEL)
			return hutch_fail(err, EINVAL,
					  "DNS records: %s \"%s\" has a label longer than 63 bytes",
					  what, shown);
		out[i] = c;
	}
	if (label == 0)
		return hutch_fail(err, EINVAL, "DNS records: %s \"%s\" has an empty label", what,
				  shown);
	out[len] = 0;
	return (int)len;
}

static void add_zone(struct dns_network *n, const char *zone)
{
	for (size_t z = 0; z < n->n_zones; z++)
		if (!strcmp(n->zones[z], zone))
			return;
	n->zones = xrealloc(n->zones, (n->n_zones + 1) * sizeof(char *));
	n->zones[n->n_zones++] = xstrdup(zone);
}

int hutch_dns_records_add_domain(struct hutch_dns_records *r, int network, const char *domain,
				 struct hutch_err **err)
{
	struct dns_network *n = network_at(r, network, err);
	char name[256];
	if (!n || normalize_name(domain, name, sizeof(name), "domain", err) < 0)
		return -1;
	add_zone(n, name);
	return 0;
}

static int parse_ip(const char *s, int *family, uint8_t addr[16])
{
	if (inet_pton(AF_INET, s, addr) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, addr) == 1) {
		*family = AF_INET6;
		return 0;
	}
	return -1;
}

/* "4.3.2.1.in-addr.arpa" or the 32 nibbles of ip6.arpa, the first `bits` bits of
 * addr only (whole octets or nibbles). */
static void reverse_name(int family, const uint8_t *addr, unsigned bits, char *out, size_t cap)
{
	size_t n = 0;
	out[0] = 0;
	if (family == AF_INET) {
		for (int i = (int)(bits / 8) - 1; i >= 0; i--)
			n += (size_t)snprintf(out + n, cap - n, "%u.", addr[i]);
		snprintf(out + n, cap - n, "in-addr.arpa");
	} else {
		for (int i = (int)(bits / 4) - 1; i >= 0; i--) {
			unsigned nib = i % 2 ? addr[i / 2] & 0xf : addr[i / 2] >> 4;
			n += (size_t)snprintf(out + n, cap - n, "%x.", nib);
		}
		snprintf(out + n, cap - n, "ip6.arpa");
	}
}

int hutch_dns_records_add_subnet(struct hutch_dns_records *r, int network, const char *cidr,
				 struct hutch_err **err)
{
	struct dns_network *n = network_at(r, network, err);
	if (!n)
		return -1;
	_cleanup_free_ char *ip = xstrdup(cidr);
	_cleanup_free_ char *shown = printable(cidr, strlen(cidr));
	char *slash = strchr(ip, '/');
	struct dns_subnet s = {0};
	char *end = NULL;
	if (slash)
		*slash = 0;
	if (parse_ip(ip, &s.family, s.addr) < 0)
		return hutch_fail(err, EINVAL,
				  "DNS records: subnet \"%s\" is not an address/prefix such as "
				  "10.89.0.0/24",
				  shown);
	unsigned max = s.family == AF_INET ? 32 : 128;
	s.prefix = max;
	if (slash) {
		errno = 0;
		unsigned long p = strtoul(slash + 1, &end, 10);
		if (!slash[1] || *end || errno || p > max)
			return hutch_fail(
			    err, EINVAL,
			    "DNS records: subnet \"%s\" has a bad prefix length (0 to "
			    "%u)",
			    shown, max);
		s.prefix = (unsigned)p;
	}
	n->subnets = xrealloc(n->subnets, (n->n_subnets + 1) * sizeof(s));
	n->subnets[n->n_subnets++] = s;
	/* its reverse zone is hutch's own: an unknown address in it is NXDOMAIN, never
	 * asked of the host's resolvers. Zones are whole octets (nibbles): a /20 has
	 * none of its own, and its unknown addresses are forwarded. */
	unsigned unit = s.family == AF_INET ? 8 : 4;
	unsigned bits = s.prefix / unit * unit;
	if (bits >= unit && (s.prefix % unit == 0)) {
		char zone[128];
		reverse_name(s.family, s.addr, bits, zone, sizeof(zone));
		add_zone(n, zone);
	}
	return 0;
}

static void index_entries(struct dns_network *n)
{
	size_t want = 16;
	while (want < n->n_entries * 2)
		want *= 2;
	if (want != n->n_slots) {
		free(n->slots);
		n->slots = xcalloc(want, sizeof(uint32_t));
		n->n_slots = want;
	} else {
		memset(n->slots, 0, want * sizeof(uint32_t));
	}
	size_t mask = want - 1;
	for (size_t e = 0; e < n->n_entries; e++) {
		size_t i = n->entries[e].hash & mask;
		while (n->slots[i])
			i = (i + 1) & mask;
		n->slots[i] = (uint32_t)e + 1;
	}
}

static struct dns_entry *get_entry(struct dns_network *n, const char *name)
{
	size_t len = strlen(name);
	uint32_t h = dns_name_hash(name, len);
	struct dns_entry *e = dns_find_entry(n, name, len, h);
	if (e)
		return e;
	if (n->n_entries == n->cap_entries) {
		n->cap_entries = n->cap_entries ? n->cap_entries * 2 : 16;
		n->entries = xrealloc(n->entries, n->cap_entries * sizeof(*n->entries));
	}
	e = &n->entries[n->n_entries++];
	memset(e, 0, sizeof(*e));
	e->name = xstrdup(name);
	e->hash = h;
	if (n->n_entries * 2 > n->n_slots)
		index_entries(n);
	else {
		size_t mask = n->n_slots - 1, i = h & mask;
		while (n->slots[i])
			i = (i + 1) & mask;
		n->slots[i] = (uint32_t)n->n_entries;
	}
	return e;
}

static void entry_add_addr(struct dns_entry *e, int family, const uint8_t *addr)
{
	if (family == AF_INET) {
		for (size_t i = 0; i < e->n_v4; i++)
			if (!memcmp(e->v4[i], addr, 4))
				return;
		e->v4 = xrealloc(e->v4, (e->n_v4 + 1) * 4);
		memcpy(e->v4[e->n_v4++], addr, 4);
	} else {
		for (size_t i = 0; i < e->n_v6; i++)
			if (!memcmp(e->v6[i], addr, 16))
				return;
		e->v6 = xrealloc(e->v6, (e->n_v6 + 1) * 16);
		memcpy(e->v6[e->n_v6++], addr, 16);
	}
}

int hutch_dns_records_add_host(struct hutch_dns_records *r, int network, const char *const *names,
			       size_t n_names, const char *const *addrs, size_t n_addrs,
			       struct hutch_err **err)
{
	struct dns_network *n = network_at(r, network, err);
	if (!n)
		return -1;
	if (n_names == 0)
		return hutch_fail(err, EINVAL, "DNS records: a host of network \"%s\" has no name",
				  n->name);
	char norm[256];
	int fam[64];
	uint8_t bin[64][16];
	if (n_addrs > ARRAY_SIZE(fam))
		return hutch_fail(err, EINVAL, "DNS records: a host has more than %zu addresses",
				  ARRAY_SIZE(fam));
	/* everything checked before anything is added: a bad host leaves no half */
	for (size_t i = 0; i < n_names; i++)
		if (normalize_name(names[i], norm, sizeof(norm), "name", err) < 0)
			return -1;
	for (size_t a = 0; a < n_addrs; a++) {
		if (parse_ip(addrs[a], &fam[a], bin[a]) < 0) {
			_cleanup_free_ char *shown = printable(addrs[a], strlen(addrs[a]));
			return hutch_fail(err, EINVAL,
					  "DNS records: address \"%s\" of \"%s\" is not an IPv4 or "
					  "IPv6 address",
					  shown, names[0]);
		}
	}
	char first[256];
	normalize_name(names[0], first, sizeof(first), "name", NULL);
	for (size_t i = 0; i < n_names; i++) {
		normalize_name(names[i], norm, sizeof(norm), "name", NULL);
		struct dns_entry *e = get_entry(n, norm);
		for (size_t a = 0; a < n_addrs; a++)
			entry_add_addr(e, fam[a], bin[a]);
	}
	for (size_t a = 0; a < n_addrs; a++) {
		char rev[128];
		reverse_name(fam[a], bin[a], fam[a] == AF_INET ? 32 : 128, rev, sizeof(rev));
		struct dns_entry *e = get_entry(n, rev);
		if (!e->ptr)
			e->ptr = xstrdup(first);
	}
	return 0;
}

/* ---- JSON ---------------------------------------------------------------------- */

static int json_strings(struct json_object *arr, const char *path, const char *what,
			const char ***out, size_t *n, struct hutch_err **err)
{
	*out = NULL;
	*n = 0;
	if (!arr)
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return hutch_fail(err, EINVAL, "%s: \"%s\" must be a list of strings", path, what);
	size_t len = json_object_array_length(arr);
	*out = xcalloc(len + 1, sizeof(char *));
	for (size_t i = 0; i < len; i++) {
		struct json_object *s = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(s, json_type_string)) {
			free(*out);
			*out = NULL;
			return hutch_fail(err, EINVAL, "%s: \"%s\" must be a list of strings", path,
					  what);
		}
		(*out)[i] = json_object_get_string(s);
	}
	*n = len;
	return 0;
}

static int load_network(struct hutch_dns_records *r, struct json_object *jn, const char *path,
			struct hutch_err **err)
{
	struct json_object *v;
	const char *name = "";
	if (!json_object_is_type(jn, json_type_object))
		return hutch_fail(err, EINVAL, "%s: each of \"networks\" must be an object", path);
	if (json_object_object_get_ex(jn, "name", &v) && json_object_is_type(v, json_type_string))
		name = json_object_get_string(v);
	int net = hutch_dns_records_add_network(r, name, err);
	if (net < 0)
		return -1;
	_cleanup_free_ const char **list = NULL;
	size_t n = 0;
	json_object_object_get_ex(jn, "subnets", &v);
	if (json_strings(v, path, "subnets", &list, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (hutch_dns_records_add_subnet(r, net, list[i], err) < 0)
			return hutch_err_wrap(err, "%s: network \"%s\"", path, name);
	free(steal_ptr(list));
	v = NULL;
	json_object_object_get_ex(jn, "domains", &v);
	if (json_strings(v, path, "domains", &list, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (hutch_dns_records_add_domain(r, net, list[i], err) < 0)
			return hutch_err_wrap(err, "%s: network \"%s\"", path, name);
	free(steal_ptr(list));
	struct json_object *hosts = NULL;
	json_object_object_get_ex(jn, "hosts", &hosts);
	if (!hosts)
		return 0;
	if (!json_object_is_type(hosts, json_type_array))
		return hutch_fail(err, EINVAL, "%s: \"hosts\" must be a list of objects", path);
	for (size_t h = 0; h < json_object_array_length(hosts); h++) {
		struct json_object *jh = json_object_array_get_idx(hosts, h), *jnames = NULL,
				   *jaddrs = NULL;
		if (!json_object_is_type(jh, json_type_object))
			return hutch_fail(err, EINVAL, "%s: \"hosts\" must be a list of objects",
					  path);
		json_object_object_get_ex(jh, "names", &jnames);
		json_object_object_get_ex(jh, "addresses", &jaddrs);
		_cleanup_free_ const char **names = NULL, **addrs = NULL;
		size_t nn, na;
		if (json_strings(jnames, path, "names", &names, &nn, err) < 0 ||
		    json_strings(jaddrs, path, "addresses", &addrs, &na, err) < 0)
			return -1;
		if (hutch_dns_records_add_host(r, net, names, nn, addrs, na, err) < 0)
			return hutch_err_wrap(err, "%s: network \"%s\", host %zu", path, name, h);
	}
	return 0;
}

int hutch_dns_records_from_json(const char *text, size_t len, const char *path,
				struct hutch_dns_records **out, struct hutch_err **err)
{
	*out = NULL;
	if (len > RECORDS_FILE_MAX)
		return hutch_fail(err, EFBIG, "%s: more than %u bytes", path, RECORDS_FILE_MAX);
	struct json_tokener *tok = json_tokener_new_ex(16);
	if (!tok)
		return hutch_fail(err, ENOMEM, "%s: cannot allocate a JSON parser", path);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	struct json_object *root = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error je = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!root || je != json_tokener_success) {
		json_object_put(root);
		return hutch_fail(err, EINVAL, "%s is not valid JSON: %s", path,
				  json_tokener_error_desc(je));
	}
	struct json_object *nets = NULL;
	if (!json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "networks", &nets) ||
	    !json_object_is_type(nets, json_type_array)) {
		json_object_put(root);
		return hutch_fail(err, EINVAL,
				  "%s: expected {\"networks\": [...]} (see docs/dns.md)", path);
	}
	struct hutch_dns_records *r = hutch_dns_records_new();
	for (size_t i = 0; i < json_object_array_length(nets); i++) {
		if (load_network(r, json_object_array_get_idx(nets, i), path, err) < 0) {
			hutch_dns_records_free(r);
			json_object_put(root);
			return -1;
		}
	}
	json_object_put(root);
	*out = r;
	return 0;
}

int hutch_dns_records_load(const char *path, struct hutch_dns_records **out, struct hutch_err **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	if (read_file_at(AT_FDCWD, path, &text, &len, err) < 0)
		return hutch_err_wrap(err, "DNS records");
	return hutch_dns_records_from_json(text, len, path, out, err);
}
