/* A growable string: text built piece by piece (interpolation, a Containerfile's
 * words, a stack written out) without each module keeping its own copy. */
#pragma once
#include <stddef.h>

struct strbuf {
	char *s; /* NUL-terminated once anything was added; NULL before */
	size_t len, cap;
};

/* Append n bytes of s (which may hold NULs); s stays NUL-terminated. */
void strbuf_add(struct strbuf *b, const char *s, size_t n);
void strbuf_adds(struct strbuf *b, const char *s);
void strbuf_addc(struct strbuf *b, char c);
void strbuf_addf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text (never NULL: "" when nothing was added), handed to the caller; b is
 * empty again. */
char *strbuf_steal(struct strbuf *b);
void strbuf_fini(struct strbuf *b);
