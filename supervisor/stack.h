/* The stack model: what a stack file says, validated, before anything starts.
 * Private to supervisor/. Container options (memory, volumes, user, ...) are kept
 * as the text the file gives (interpolated) with their line: they become a
 * container spec through the runtime's own setters, so that a stack key and the
 * `hutch run` flag of the same meaning share one code path and one message.
 * What is the stack's own (depends_on, restart, health_*, replicas, notify,
 * durations, names) is checked and parsed here. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "supervisor/supervisor.h"

/* A stack file larger than this is refused: a real one is a few KiB, and
 * iniparser 4.1's dictionary is a list searched from the start for every key
 * (a quadratic time: 0.5 s at 256 KiB here, 14 s at 1 MiB). */
#define STACK_FILE_MAX (256u << 10)
/* The same for a .env or an env_file. */
#define STACK_ENV_FILE_MAX (64u << 10)
/* A stack or service name is at most a DNS label long: services get DNS
 * names with the network issue. */
#define STACK_NAME_MAX	   63
#define STACK_REPLICAS_MAX 1000
/* Past this many errors the rest are counted, not listed. */
#define STACK_ERRORS_MAX 50

enum stack_dep_condition {
	STACK_DEP_STARTED,
	STACK_DEP_HEALTHY,
	STACK_DEP_COMPLETED, /* exited 0 */
};

struct stack_dep {
	char *service;
	size_t index; /* into stack->services */
	enum stack_dep_condition condition;
	int line;
	bool restart; /* compose's depends_on.NAME.restart: restart this one when it restarts */
};

enum stack_restart {
	STACK_RESTART_NO,
	STACK_RESTART_ALWAYS,
	STACK_RESTART_ON_FAILURE,
	STACK_RESTART_UNLESS_STOPPED,
};

enum stack_health_kind {
	STACK_HEALTH_NONE,
	STACK_HEALTH_CMD,  /* exec'd inside the container */
	STACK_HEALTH_TCP,  /* a connect from the container's network namespace */
	STACK_HEALTH_HTTP, /* a GET, the same way; 2xx/3xx is healthy */
};

struct stack_health {
	enum stack_health_kind kind;
	char **cmd; /* STACK_HEALTH_CMD */
	size_t n_cmd;
	uint16_t port;	 /* TCP and HTTP */
	char *http_host; /* the Host and address: "127.0.0.1" unless given */
	char *http_path; /* "/" unless given; with the query */
	int64_t interval_ns, timeout_ns, start_period_ns, start_interval_ns;
	unsigned retries;
	int line; /* of the check's key, 0 without one */
};

/* One container option as the file gives it. */
enum stack_option_kind {
	STACK_OPT_TEXT, /* one value: text */
	STACK_OPT_LIST, /* several: words (shell-style), one per `hutch run` flag */
	STACK_OPT_FLAG, /* a boolean: flag */
};

struct stack_option {
	const char *key; /* the key, also the `hutch run` flag with '-' for '_' */
	enum stack_option_kind kind;
	char *text;   /* interpolated */
	char **words; /* STACK_OPT_LIST */
	size_t n_words;
	bool flag; /* STACK_OPT_FLAG */
	int line;
	char *file; /* NULL: stack->file's line; else the override file it came from */
};

/* build = CONTEXT: the service's image is built (docs/build.md), named by
 * image = or STACK-SERVICE. */
struct stack_build {
	char *context;	  /* absolute; NULL: the service is not built */
	char *dockerfile; /* NULL: CONTEXT/Containerfile, else CONTEXT/Dockerfile */
	char *target;
	char **args; /* "K=V", or "K": from the environment */
	size_t n_args;
	int line;
};

struct stack_service {
	char *name;
	int line; /* of its [service.NAME] */
	char *image;
	struct stack_build build;
	char **command; /* NULL: the image's Cmd */
	size_t n_command;
	bool has_entrypoint; /* set, maybe to nothing (entrypoint = ""): no image Entrypoint */
	char **entrypoint;
	size_t n_entrypoint;
	char **env; /* "K=V": env_file ones first, then env; one per name, the last wins */
	size_t n_env;
	struct stack_health health;
	enum stack_restart restart;
	unsigned restart_max; /* on-failure:N, 0 = no limit */
	int64_t stop_grace_ns;
	struct stack_dep *deps;
	size_t n_deps;
	unsigned replicas;
	bool notify;
	struct stack_option *options; /* in the file's order */
	size_t n_options;
};

/* A network the stack declares: [network.NAME] or compose's top-level
 * networks:. "default" is the stack's default network (STACK_default). */
struct stack_network {
	char *name;
	bool internal; /* no route out */
	char *subnet;  /* "10.89.7.0/24"; NULL: hutch chooses */
	bool ipv6;     /* dual stack (docs/network.md) */
	char *subnet6; /* NULL: a ULA /64 hutch chooses */
	int line;
	int subnet_line; /* of its subnet key */
};
/* A named volume declared at the top of a compose file. */
struct stack_volume {
	char *name; /* the key; the volume's name is the stack's NAME_KEY, as compose */
	int line;
};

struct hutch_stack {
	char *file; /* as given (a compose stack: the first file) */
	char *dir;  /* the file's directory: env files and relative volumes are below it */
	char *name;
	struct stack_service *services; /* in the file's order */
	size_t n_services;
	size_t *order; /* indices in start order (dependencies first); stop is the reverse */
	struct stack_network *networks; /* [network.NAME], compose's top-level networks: */
	size_t n_networks;
	char *subnet; /* [stack] subnet: the default network's (NULL: chosen) */
	int subnet_line;
	char **dns_upstream; /* [stack] dns_upstream: where other names are forwarded */
	size_t n_dns_upstream;
	struct stack_volume *volumes; /* compose's top-level volumes: */
	size_t n_volumes;
	char **warnings;
	size_t n_warnings;
};

/* The option of that key, or NULL when the file does not set it. */
const struct stack_option *stack_service_option(const struct stack_service *svc, const char *key);
/* Index of the named service, or -1. */
ssize_t stack_service_index(const struct hutch_stack *stack, const char *name);

/* The loader, with the environment given (NULL: the process's environ). */
int stack_load_env(const char *path, char **envp, struct hutch_stack **out, struct hutch_err **err);

/* For the fuzz target and tests: -1 when the line scan refuses text, else how
 * many keys iniparser reads otherwise than the scan (0: they agree on every
 * key, value and section, and iniparser holds nothing more). */
int stack_ini_disagreements(const char *text, size_t len);

/* The syntax of a published port as compose and `docker run -p` write it,
 * [[IP:][HOST[-HOST]]:]PORT[-PORT][/tcp|udp|sctp] (expose: PORT[-PORT][/PROTO]):
 * NULL when it is one, else what is wrong (static text). */
const char *stack_port_syntax(const char *s, bool expose);

/* The one of names that word is most likely a typo of, or NULL ("did you
 * mean"). */
const char *stack_nearest(const char *word, const char *const *names, size_t n);

/* ---- stackfile.c for compose.c: one code path for both formats ---------------
 * A compose file is read into the keys and values an INI file would give
 * (interpolated, with the place each came from as a line number), and these go
 * through the INI reader's own checks and into the same model. */
struct stack_env;
struct stack_diag;
struct stack_key {
	const char *key;   /* a key of [service.NAME] */
	const char *value; /* interpolated; list keys as shell words */
	int line;
};
struct stack_service_in {
	const char *name;
	int line;
	const struct stack_key *keys;
	size_t n_keys;
};
/* Fill stack's services, name (NULL: from stack->dir) and start order. Messages
 * go to diag as "FILE:LINE: KEY: ..." with msg_file for FILE. */
void stack_build(struct hutch_stack *stack, const char *msg_file, const struct stack_env *env,
		 const struct stack_key *name, const struct stack_service_in *svcs, size_t n,
		 struct stack_diag *diag);

/* ---- diagnostics: a compiler's list of errors ------------------------------ */
struct stack_diag_item {
	int sort_line; /* where in the stack file the problem comes from */
	size_t seq;
	char *text; /* "FILE:LINE: KEY: message" */
};
struct stack_diag {
	struct stack_diag_item *items;
	size_t n;
	char **warnings;
	size_t n_warnings;
};
void stack_diag_add(struct stack_diag *d, int sort_line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void stack_diag_warn(struct stack_diag *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Fill err with every error, sorted by line; -1. */
int stack_diag_fail(struct stack_diag *d, const char *file, struct hutch_err **err);
void stack_diag_free(struct stack_diag *d);

/* ---- words.c: shell-style words ------------------------------------------- */
/* Split s as a POSIX shell would split a simple command's words, without any
 * expansion: blanks separate words, '...' is literal, "..." keeps blanks and
 * takes \" \\ \$ \` as escapes, a backslash outside quotes takes the next
 * character as it is. On error *errmsg says what (static text) and -1. */
int shell_words(const char *s, char ***out, size_t *n, const char **errmsg);
void strv_free(char **v, size_t n);
/* A stack, compose or env file: a regular file (a FIFO is refused at once, not
 * waited on) of at most max bytes, NUL-terminated; messages name it as shown
 * (escaped: env_file names are foreign text) and say it is not a `what`. */
int stack_read_file(const char *path, const char *shown, size_t max, const char *what, char **out,
		    size_t *len, struct hutch_err **err);

/* ---- interp.c: ${VAR} interpolation and env files --------------------------- */
struct stack_env {
	char **envp;   /* the process's: wins over .env, as compose */
	char **dotenv; /* "K=V" from the .env beside the file */
	size_t n_dotenv;
};
/* The value of name: the environment's, else .env's; NULL when unset. */
const char *stack_env_get(const struct stack_env *env, const char *name);
/* Interpolate ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message},
 * ${VAR?message}, ${VAR:+alt}, ${VAR+alt}, $VAR and $$ (a literal $) in s.
 * On error *errmsg is an allocated message and -1. Each variable that is unset
 * and has no default is added to *unset (allocated names) for a warning. */
int stack_interpolate(const struct stack_env *env, const char *s, char **out, char **errmsg,
		      char ***unset, size_t *n_unset);
/* Parse an env file (KEY=VALUE lines, # comments, optional "export ", values
 * plain, "double-quoted" with \n \t \" \\ escapes, or 'single-quoted'). Errors
 * go to diag as "label:LINE: ..." with sort_line. Appends "K=V" to *vars. */
void stack_parse_env_file(const char *text, size_t len, const char *label, int sort_line,
			  struct stack_diag *diag, char ***vars, size_t *n_vars);

/* ---- graph.c: the dependency graph ------------------------------------------ */
/* Report every dependency cycle to diag ("a -> b -> c -> a", at the line of the
 * depends_on that closes it); on success fill stack->order. 0 or -1. */
int stack_graph_order(struct hutch_stack *stack, struct stack_diag *diag);
/* Which services starting the named ones needs (them included), in start
 * order: *out gets indices, *n their count. Unknown names fail. */
int stack_graph_needed(const struct hutch_stack *stack, const char *const *names, size_t n_names,
		       size_t **out, size_t *n, struct hutch_err **err);
