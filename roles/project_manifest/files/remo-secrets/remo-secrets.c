/*
 * Copyright (c) remo.broker contributors
 * GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
 *
 * remo-secrets: the in-container client of a remo-broker project socket.
 *
 * Built as one static binary (gcc -static) so it runs in any image, with or
 * without Python, glibc or a package manager.  It speaks the broker's NDJSON
 * protocol (docs/protocol.md): `info` for the delivery specs, `get` (with `field`
 * for templates) for values, `watch` for change events.
 *
 *   remo-secrets env      print `export VAR='value'` lines for the env secrets
 *                         (for `eval` in a shell hook; nothing is written to disk)
 *   remo-secrets sync     render every file secret once onto tmpfs
 *   remo-secrets watch    sync, then follow the broker's watch stream and rewrite
 *                         changed files atomically; reconnects after a broker restart
 *   remo-secrets ping     check that the broker answers
 *   remo-secrets get NAME [FIELD]  print one value (for scripts)
 *
 * Options: --socket PATH (default: $REMO_SECRETS_SOCKET, else the only *.sock in
 * /run/remo-broker), --tries N and --delay-ms N (bounded retry while the broker is not
 * up), --signal SIG --signal-pid PID (watch: signal a process after a change).
 *
 * Values are held only in this process's memory and zeroed after use.  Files are
 * written only to tmpfs; anything else is refused.  `~/x` files live in
 * /dev/shm/remo-secrets/home/x ($REMO_SECRETS_TMPFS_ROOT) behind a symlink at ~/x.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define SOCKET_DIR "/run/remo-broker"
#define TMPFS_ROOT "/dev/shm/remo-secrets"
#define TMPFS_MAGIC_NUMBER 0x01021994
#define MAX_REPLY (1024 * 1024 + 1024)
#define MAX_SECRETS 512
#define ACL_USER_TAG 0x02
/* Tests build the client with their own passwd file. */
#ifndef PASSWD_FILE
#define PASSWD_FILE "/etc/passwd"
#endif

static const char *prog = "remo-secrets";
static char socket_path[PATH_MAX];
static int tries = 20;
static int delay_ms = 250;
static int signal_number = 0;
static pid_t signal_pid = 0;
static char user_home[PATH_MAX] = "";
static const char *tmpfs_root = TMPFS_ROOT;

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void wipe_free(char *p) {
    if (p) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

static void *xmalloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        say("out of memory");
        exit(70);
    }
    return p;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------------ JSON */
/* A small parser for the broker's replies: objects, arrays, strings, and the
 * scalars true/false/null/numbers kept as raw text. */
enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };
struct jv {
    enum jtype t;
    char *s;          /* J_STR: decoded text; J_NUM/J_BOOL: raw text */
    size_t len;       /* items in an array or object */
    char **keys;      /* J_OBJ */
    struct jv **items;
};

static void jfree(struct jv *v) {
    size_t i;
    if (!v) return;
    for (i = 0; i < v->len; i++) {
        if (v->keys) wipe_free(v->keys[i]);
        jfree(v->items[i]);
    }
    free(v->keys);
    free(v->items);
    wipe_free(v->s);
    free(v);
}

struct jp { const char *p, *end; int depth; };

static void jws(struct jp *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r' || *j->p == '\n')) j->p++;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(struct jp *j, unsigned *out) {
    int i, h;
    unsigned v = 0;
    if (j->end - j->p < 4) return -1;
    for (i = 0; i < 4; i++) {
        if ((h = hexval(j->p[i])) < 0) return -1;
        v = v * 16 + (unsigned)h;
    }
    j->p += 4;
    *out = v;
    return 0;
}

static char *jstring(struct jp *j) {
    size_t cap = (size_t)(j->end - j->p) + 1, n = 0;
    char *out;
    if (j->p >= j->end || *j->p != '"') return NULL;
    j->p++;
    out = xmalloc(cap);
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p++;
        if (c != '\\') {
            out[n++] = (char)c;
            continue;
        }
        if (j->p >= j->end) goto bad;
        c = (unsigned char)*j->p++;
        switch (c) {
        case '"': case '\\': case '/': out[n++] = (char)c; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (read_hex4(j, &cp)) goto bad;
            if (cp >= 0xD800 && cp <= 0xDBFF && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
                j->p += 2;
                if (read_hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF) goto bad;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) goto bad; /* a NUL cannot travel in env or C strings */
            if (cp < 0x80) out[n++] = (char)cp;
            else if (cp < 0x800) { out[n++] = (char)(0xC0 | (cp >> 6)); out[n++] = (char)(0x80 | (cp & 0x3F)); }
            else if (cp < 0x10000) { out[n++] = (char)(0xE0 | (cp >> 12)); out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[n++] = (char)(0x80 | (cp & 0x3F)); }
            else { out[n++] = (char)(0xF0 | (cp >> 18)); out[n++] = (char)(0x80 | ((cp >> 12) & 0x3F)); out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[n++] = (char)(0x80 | (cp & 0x3F)); }
            break;
        }
        default: goto bad;
        }
    }
    if (j->p >= j->end) goto bad;
    j->p++;
    out[n] = '\0';
    return out;
bad:
    explicit_bzero(out, cap);
    free(out);
    return NULL;
}

static struct jv *jvalue(struct jp *j);

static struct jv *jcontainer(struct jp *j, int is_obj) {
    struct jv *v = xmalloc(sizeof *v);
    size_t cap = 8;
    v->t = is_obj ? J_OBJ : J_ARR;
    v->items = xmalloc(cap * sizeof *v->items);
    if (is_obj) v->keys = xmalloc(cap * sizeof *v->keys);
    j->p++;
    jws(j);
    if (j->p < j->end && *j->p == (is_obj ? '}' : ']')) { j->p++; return v; }
    for (;;) {
        char *key = NULL;
        struct jv *item;
        jws(j);
        if (is_obj) {
            if (!(key = jstring(j))) goto bad;
            jws(j);
            if (j->p >= j->end || *j->p != ':') { free(key); goto bad; }
            j->p++;
        }
        if (!(item = jvalue(j))) { free(key); goto bad; }
        if (v->len == cap) {
            cap *= 2;
            v->items = realloc(v->items, cap * sizeof *v->items);
            if (is_obj) v->keys = realloc(v->keys, cap * sizeof *v->keys);
            if (!v->items || (is_obj && !v->keys)) { say("out of memory"); exit(70); }
        }
        if (is_obj) v->keys[v->len] = key;
        v->items[v->len++] = item;
        jws(j);
        if (j->p < j->end && *j->p == ',') { j->p++; continue; }
        if (j->p < j->end && *j->p == (is_obj ? '}' : ']')) { j->p++; return v; }
        goto bad;
    }
bad:
    jfree(v);
    return NULL;
}

static struct jv *jvalue(struct jp *j) {
    struct jv *v;
    const char *start;
    jws(j);
    if (j->p >= j->end || ++j->depth > 32) return NULL;
    if (*j->p == '{' || *j->p == '[') {
        v = jcontainer(j, *j->p == '{');
        j->depth--;
        return v;
    }
    v = xmalloc(sizeof *v);
    if (*j->p == '"') {
        v->t = J_STR;
        if (!(v->s = jstring(j))) { free(v); return NULL; }
    } else {
        start = j->p;
        while (j->p < j->end && strchr(",}] \t\r\n", *j->p) == NULL) j->p++;
        v->s = strndup(start, (size_t)(j->p - start));
        if (!strcmp(v->s, "null")) v->t = J_NULL;
        else if (!strcmp(v->s, "true") || !strcmp(v->s, "false")) v->t = J_BOOL;
        else if (*v->s == '-' || (*v->s >= '0' && *v->s <= '9')) v->t = J_NUM;
        else { jfree(v); return NULL; }
    }
    j->depth--;
    return v;
}

static struct jv *jparse(const char *text, size_t n) {
    struct jp j = {text, text + n, 0};
    struct jv *v = jvalue(&j);
    jws(&j);
    if (v && j.p != j.end) { jfree(v); return NULL; }
    return v;
}

static struct jv *jget(const struct jv *obj, const char *key) {
    size_t i;
    if (!obj || obj->t != J_OBJ) return NULL;
    for (i = 0; i < obj->len; i++)
        if (!strcmp(obj->keys[i], key)) return obj->items[i];
    return NULL;
}

static const char *jstr(const struct jv *obj, const char *key) {
    struct jv *v = jget(obj, key);
    return v && v->t == J_STR ? v->s : NULL;
}

static int jtrue(const struct jv *obj, const char *key) {
    struct jv *v = jget(obj, key);
    return v && v->t == J_BOOL && !strcmp(v->s, "true");
}

/* -------------------------------------------------------------- base64 */
static char *b64decode(const char *in, size_t *outlen) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    unsigned acc = 0;
    int bits = 0;
    char *out = xmalloc(n + 1);
    for (; *in && *in != '='; in++) {
        const char *p = strchr(tbl, *in);
        if (!p) { free(out); return NULL; }
        acc = (acc << 6) | (unsigned)(p - tbl);
        bits += 6;
        if (bits >= 8) { bits -= 8; out[o++] = (char)((acc >> bits) & 0xFF); }
    }
    *outlen = o;
    return out;
}

/* -------------------------------------------------------------- names */
static int name_ok(const char *s, const char *extra, size_t max) {
    size_t n = 0;
    if (!s || !*s) return 0;
    for (; *s; s++, n++) {
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || strchr(extra, *s)))
            return 0;
    }
    return n <= max;
}

static int env_name_ok(const char *s) {
    return name_ok(s, "", 255) && !(*s >= '0' && *s <= '9');
}

/* ------------------------------------------------------------ transport */
static int find_socket(void) {
    const char *env = getenv("REMO_SECRETS_SOCKET");
    DIR *d;
    struct dirent *e;
    int found = 0;
    if (socket_path[0]) return 0;
    if (env && *env) {
        snprintf(socket_path, sizeof socket_path, "%s", env);
        return 0;
    }
    /* The launcher mounts exactly one project's socket directory here. */
    if ((d = opendir(SOCKET_DIR))) {
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n > 5 && !strcmp(e->d_name + n - 5, ".sock") && strcmp(e->d_name, "admin.sock")) {
                snprintf(socket_path, sizeof socket_path, "%s/%s", SOCKET_DIR, e->d_name);
                found++;
            }
        }
        closedir(d);
    }
    if (found == 1) return 0;
    if (found > 1) say("more than one socket in %s; pass --socket", SOCKET_DIR);
    else snprintf(socket_path, sizeof socket_path, "%s/<project>.sock", SOCKET_DIR);
    return -1;
}

static int connect_once(int *err) {
    struct sockaddr_un addr;
    struct timeval tv = {10, 0};
    int fd;
    if (strlen(socket_path) >= sizeof addr.sun_path) { *err = ENAMETOOLONG; return -1; }
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, socket_path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) { *err = errno; return -1; }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { *err = errno; close(fd); return -1; }
    return fd;
}

/* Bounded retry while the broker (or its socket mount) is not up yet. */
static int connect_retry(int attempts, int quiet) {
    int i, fd, err = 0;
    if (find_socket() && attempts <= 1) {
        if (!quiet) say("no broker socket found in %s", SOCKET_DIR);
        return -1;
    }
    for (i = 0; i < attempts; i++) {
        if (i) {
            sleep_ms(delay_ms);
            find_socket();
        }
        if ((fd = connect_once(&err)) >= 0) return fd;
    }
    if (!quiet)
        say("broker socket %s is not answering after %d tries (%s); is remo-broker running and the project registered?",
            socket_path, attempts, strerror(err));
    return -1;
}

struct reader { int fd; char *buf; size_t len, cap; };

/* One reply line; NULL on EOF, error or an oversized line. */
static struct jv *read_reply(struct reader *r) {
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        ssize_t got;
        if (nl) {
            size_t n = (size_t)(nl - r->buf);
            struct jv *v = jparse(r->buf, n);
            explicit_bzero(r->buf, n + 1);
            memmove(r->buf, nl + 1, r->len - n - 1);
            r->len -= n + 1;
            if (!v) say("broker at %s sent a reply that is not JSON", socket_path);
            return v;
        }
        if (r->len == r->cap) {
            say("broker at %s sent a reply over %d bytes", socket_path, MAX_REPLY);
            return NULL;
        }
        got = read(r->fd, r->buf + r->len, r->cap - r->len);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return NULL;
        r->len += (size_t)got;
    }
}

static void reader_init(struct reader *r, int fd) {
    r->fd = fd;
    r->len = 0;
    r->cap = MAX_REPLY;
    r->buf = xmalloc(r->cap);
}

static void reader_done(struct reader *r) {
    explicit_bzero(r->buf, r->cap);
    free(r->buf);
    close(r->fd);
}

static int send_line(int fd, const char *line) {
    size_t n = strlen(line), off = 0;
    while (off < n) {
        ssize_t w = write(fd, line + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        off += (size_t)w;
    }
    return 0;
}

static struct jv *call(struct reader *r, const char *line) {
    if (send_line(r->fd, line)) {
        int err = errno;
        /* A refused peer is closed right after its one error line: read that line. */
        struct jv *refusal = err == EPIPE || err == ECONNRESET ? read_reply(r) : NULL;
        if (refusal) return refusal;
        say("cannot send to broker at %s: %s", socket_path, strerror(err));
        return NULL;
    }
    return read_reply(r);
}

static void report_error(const struct jv *reply, const char *what) {
    const char *code = jstr(reply, "code"), *msg = jstr(reply, "message");
    say("%s: %s%s%s", what, code ? code : "no reply", msg ? ": " : "", msg ? msg : "");
}

/* The value of NAME (or of one FIELD of it); NULL when unavailable.  *len is set
 * because value_b64 may carry any bytes. */
static char *get_value(struct reader *r, const char *name, const char *field, size_t *len) {
    char line[512];
    struct jv *reply;
    char *out = NULL;
    const char *v;
    if (field) snprintf(line, sizeof line, "{\"op\":\"get\",\"name\":\"%s\",\"field\":\"%s\"}\n", name, field);
    else snprintf(line, sizeof line, "{\"op\":\"get\",\"name\":\"%s\"}\n", name);
    if (!(reply = call(r, line))) return NULL;
    if (!jtrue(reply, "ok")) {
        char what[300];
        snprintf(what, sizeof what, "get %s%s%s", name, field ? " field " : "", field ? field : "");
        report_error(reply, what);
    } else if ((v = jstr(reply, "value"))) {
        *len = strlen(v);
        out = strdup(v);
    } else if ((v = jstr(reply, "value_b64"))) {
        out = b64decode(v, len);
    }
    jfree(reply);
    return out;
}

/* ------------------------------------------------------------ identity */
/* The uid the broker serves on the socket.  The daemon owns its sockets and grants the
 * project's uid one named-user POSIX ACL entry (`user:UID:rw`); only where the file
 * system has no ACLs is the socket chowned to that uid.  So: the ACL's one named user,
 * else the owner. */
static uid_t socket_project_uid(const struct stat *st) {
    /* linux/posix_acl_xattr.h: u32 version 2, then entries of u16 tag, u16 perm, u32 id. */
    unsigned char acl[4 + 8 * 64];
    ssize_t n = getxattr(socket_path, "system.posix_acl_access", acl, sizeof acl);
    uid_t named = st->st_uid;
    int users = 0;
    ssize_t off;
    if (n < 4 || (acl[0] | acl[1] << 8 | acl[2] << 16 | (unsigned)acl[3] << 24) != 2) return st->st_uid;
    for (off = 4; off + 8 <= n; off += 8) {
        if ((acl[off] | acl[off + 1] << 8) == ACL_USER_TAG) {
            named = (uid_t)(acl[off + 4] | acl[off + 5] << 8 | acl[off + 6] << 16 | (unsigned)acl[off + 7] << 24);
            users++;
        }
    }
    return users == 1 ? named : st->st_uid;
}

/* /etc/passwd's group and home for uid (no NSS: the binary is static). */
static void passwd_entry(uid_t uid, gid_t *gid, char *home, size_t n) {
    FILE *pw;
    char line[1024];
    *gid = (gid_t)uid;
    home[0] = '\0';
    if (!(pw = fopen(PASSWD_FILE, "re"))) return;
    while (fgets(line, sizeof line, pw)) {
        /* name:passwd:uid:gid:gecos:home:shell; empty fields count (no strtok). */
        char *f[7] = {0};
        int i = 0;
        char *p = line;
        line[strcspn(line, "\n")] = '\0';
        while (i < 7) {
            f[i++] = p;
            if (!(p = strchr(p, ':'))) break;
            *p++ = '\0';
        }
        if (i >= 6 && (uid_t)strtoul(f[2], NULL, 10) == uid) {
            *gid = (gid_t)strtoul(f[3], NULL, 10);
            snprintf(home, n, "%s", f[5]);
            break;
        }
    }
    fclose(pw);
}

/* Root in the container is not the project's uid: the broker would refuse it.  Act
 * as the project's uid (the one the socket grants) and deliver files owned by it. */
static int become_project_user(void) {
    struct stat st;
    char pw_home[PATH_MAX];
    uid_t uid;
    gid_t gid;
    if (find_socket() || stat(socket_path, &st) != 0) return 0;
    uid = socket_project_uid(&st);
    if (geteuid() != 0 || uid == 0) {
        /* Not switching: $HOME decides where `~` is, as for any program; without one
         * (the entrypoint's watcher runs under env -i), this uid's passwd entry. */
        if (!getenv("HOME") || !*getenv("HOME")) {
            passwd_entry(geteuid(), &gid, pw_home, sizeof pw_home);
            snprintf(user_home, sizeof user_home, "%s", pw_home);
        }
        return 0;
    }
    passwd_entry(uid, &gid, pw_home, sizeof pw_home);
    if (setgroups(0, NULL) || setgid(gid) || setuid(uid)) {
        say("running as root and cannot switch to the project's uid %u: %s", (unsigned)uid, strerror(errno));
        return -1;
    }
    snprintf(user_home, sizeof user_home, "%s", pw_home);
    if (user_home[0]) setenv("HOME", user_home, 1);
    return 0;
}

/* ---------------------------------------------------------------- files */
static int on_tmpfs(const char *dir) {
    struct statfs fs;
    return statfs(dir, &fs) == 0 && (unsigned long)fs.f_type == TMPFS_MAGIC_NUMBER;
}

static int mkdirs(const char *path, mode_t mode) {
    char tmp[PATH_MAX];
    char *p;
    snprintf(tmp, sizeof tmp, "%s", path);
    for (p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, mode) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) && errno != EEXIST) return -1;
    return 0;
}

static void dirname_of(const char *path, char *out, size_t n) {
    const char *slash = strrchr(path, '/');
    snprintf(out, n, "%.*s", slash && slash != path ? (int)(slash - path) : 1, slash ? path : "/");
}

/* `~/x` lives at TMPFS_ROOT/home/x, reached through a symlink at $HOME/x. */
static int resolve_path(const char *file_path, char *real, size_t n, char *link, size_t ln) {
    link[0] = '\0';
    if (file_path[0] == '~' && (file_path[1] == '/' || !file_path[1])) {
        const char *home = user_home[0] ? user_home : getenv("HOME");
        const char *rest = file_path[1] ? file_path + 2 : "";
        if (!home || !*rest) return -1;
        if ((size_t)snprintf(real, n, "%s/home/%s", tmpfs_root, rest) >= n) return -1;
        if ((size_t)snprintf(link, ln, "%s/%s", home, rest) >= ln) return -1;
        return 0;
    }
    if (file_path[0] != '/' || strstr(file_path, "/../") || strstr(file_path, "/./")) return -1;
    snprintf(real, n, "%s", file_path);
    return 0;
}

static int ensure_link(const char *link, const char *target) {
    char cur[PATH_MAX], dir[PATH_MAX];
    ssize_t k = readlink(link, cur, sizeof cur - 1);
    if (k >= 0) {
        cur[k] = '\0';
        if (!strcmp(cur, target)) return 0;
    } else if (errno != ENOENT) {
        say("refusing to replace %s (not our symlink)", link);
        return -1;
    }
    if (k >= 0) unlink(link);
    dirname_of(link, dir, sizeof dir);
    if (mkdirs(dir, 0700) || symlink(target, link)) {
        say("cannot link %s -> %s: %s", link, target, strerror(errno));
        return -1;
    }
    return 0;
}

/* 1 when written, 0 when unchanged, -1 on error.  Atomic: temp file + rename. */
static int write_secret_file(const char *path, const char *data, size_t len, mode_t mode) {
    char dir[PATH_MAX], tmp[PATH_MAX];
    struct stat st;
    int fd, same = 0;
    dirname_of(path, dir, sizeof dir);
    if (mkdirs(dir, 0700)) { say("cannot create %s: %s", dir, strerror(errno)); return -1; }
    if (!on_tmpfs(dir)) { say("refusing to write %s: %s is not on tmpfs", path, dir); return -1; }
    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == len && (st.st_mode & 07777) == mode) {
            char *cur = xmalloc(len + 1);
            same = read(fd, cur, len + 1) == (ssize_t)len && memcmp(cur, data, len) == 0;
            explicit_bzero(cur, len + 1);
            free(cur);
        }
        close(fd);
        if (same) return 0;
    }
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/.remo-secrets.XXXXXX", dir) >= sizeof tmp) return -1;
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) { say("cannot create a file in %s: %s", dir, strerror(errno)); return -1; }
    if (fchmod(fd, mode) || write(fd, data, len) != (ssize_t)len || close(fd) || rename(tmp, path)) {
        say("cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 1;
}

/* Fill {{field}} placeholders from the structured secret NAME. */
static char *render_template(struct reader *r, const char *name, const char *tpl, size_t *outlen) {
    size_t cap = strlen(tpl) + 1, n = 0;
    char *out = xmalloc(cap);
    const char *p = tpl;
    while (*p) {
        const char *open = strstr(p, "{{"), *close, *a, *b;
        char field[129];
        char *val;
        size_t vlen = 0;
        if (!open || !(close = strstr(open + 2, "}}"))) {
            size_t rest = strlen(p);
            if (n + rest + 1 > cap) { cap = n + rest + 1; out = realloc(out, cap); }
            memcpy(out + n, p, rest);
            n += rest;
            break;
        }
        for (a = open + 2; *a == ' '; a++) {
        }
        for (b = close; b > a && b[-1] == ' '; b--) {
        }
        if ((size_t)(b - a) >= sizeof field) goto bad;
        snprintf(field, sizeof field, "%.*s", (int)(b - a), a);
        if (!name_ok(field, "-.", 128)) { say("%s: bad template placeholder", name); goto bad; }
        if (!(val = get_value(r, name, field, &vlen))) goto bad;
        if (n + (size_t)(open - p) + vlen + strlen(close) + 1 > cap) {
            cap = (n + (size_t)(open - p) + vlen + strlen(close) + 1) * 2;
            out = realloc(out, cap);
        }
        memcpy(out + n, p, (size_t)(open - p));
        n += (size_t)(open - p);
        memcpy(out + n, val, vlen);
        n += vlen;
        explicit_bzero(val, vlen);
        free(val);
        p = close + 2;
    }
    out[n] = '\0';
    *outlen = n;
    return out;
bad:
    explicit_bzero(out, cap);
    free(out);
    return NULL;
}

/* Connect and fetch info.  A container started before the launcher attested it (it does
 * so as soon as Docker reports the start) is refused with peer_unexpected: retried too,
 * within the same bounded tries.  On success the reader stays open. */
static struct jv *connect_info(struct reader *r, int attempts, int quiet) {
    int i;
    for (i = 0; i < attempts; i++) {
        struct jv *info;
        const char *code;
        int fd = connect_retry(i ? 1 : attempts, quiet);
        if (fd < 0) return NULL;
        reader_init(r, fd);
        info = call(r, "{\"op\":\"info\"}\n");
        code = info ? jstr(info, "code") : NULL;
        if (info && code && !strcmp(code, "peer_unexpected") && i + 1 < attempts) {
            jfree(info);
            reader_done(r);
            sleep_ms(delay_ms);
            continue;
        }
        if (info && !jtrue(info, "ok")) {
            report_error(info, "info");
            jfree(info);
            info = NULL;
        } else if (info && (!jget(info, "secrets") || jget(info, "secrets")->t != J_ARR)) {
            say("broker at %s sent no delivery specs (info.secrets)", socket_path);
            jfree(info);
            info = NULL;
        }
        if (!info) reader_done(r);
        return info;
    }
    return NULL;
}

/* TMPFS_ROOT is ours alone: /dev/shm is world-writable, so another user of the
 * container could have made it first. */
static int prepare_tmpfs_root(void) {
    struct stat st;
    char sub[PATH_MAX];
    if (mkdir(tmpfs_root, 0700) && errno != EEXIST) { say("cannot create %s: %s", tmpfs_root, strerror(errno)); return -1; }
    if (lstat(tmpfs_root, &st) || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
        say("refusing %s: not a private directory of uid %u", tmpfs_root, (unsigned)geteuid());
        return -1;
    }
    if (!on_tmpfs(tmpfs_root)) { say("refusing %s: not on tmpfs", tmpfs_root); return -1; }
    /* /run/secrets is a symlink to this directory (install.sh). */
    snprintf(sub, sizeof sub, "%s/run-secrets", tmpfs_root);
    if (mkdir(sub, 0700) && errno != EEXIST) { say("cannot create %s: %s", sub, strerror(errno)); return -1; }
    return 0;
}

/* Render every file secret; returns the number of files written, -1 on error. */
static int sync_files(int attempts, int quiet) {
    struct reader r;
    struct jv *info, *specs;
    size_t i;
    int written = 0, failed = 0;
    if (prepare_tmpfs_root()) return -1;
    if (!(info = connect_info(&r, attempts, quiet))) return -1;
    specs = jget(info, "secrets");
    for (i = 0; i < specs->len && i < MAX_SECRETS; i++) {
        const struct jv *spec = specs->items[i];
        const char *name = jstr(spec, "name"), *fetch_as = jstr(spec, "fetch_as");
        const char *file_path = jstr(spec, "file_path"), *mode_s = jstr(spec, "file_mode"), *tpl = jstr(spec, "template");
        char real[PATH_MAX], link[PATH_MAX];
        char *data;
        size_t len = 0;
        mode_t mode = mode_s ? (mode_t)strtoul(mode_s, NULL, 8) & 0777 : 0400;
        int rc;
        if (!fetch_as || strcmp(fetch_as, "file")) continue;
        if (!name_ok(name, "", 128) || !file_path || resolve_path(file_path, real, sizeof real, link, sizeof link)) {
            say("%s: unusable file_path", name ? name : "?");
            failed++;
            continue;
        }
        data = tpl ? render_template(&r, name, tpl, &len) : get_value(&r, name, NULL, &len);
        if (!data) { failed++; continue; }
        rc = write_secret_file(real, data, len, mode);
        explicit_bzero(data, len);
        free(data);
        if (rc < 0 || (link[0] && ensure_link(link, real))) { failed++; continue; }
        written += rc;
    }
    jfree(info);
    reader_done(&r);
    return failed ? -1 : written;
}

/* ----------------------------------------------------------------- env */
static void put_quoted(const char *v, size_t len) {
    size_t i;
    putchar('\'');
    for (i = 0; i < len; i++) {
        if (v[i] == '\'') fputs("'\\''", stdout);
        else putchar(v[i]);
    }
    putchar('\'');
}

static int cmd_env(void) {
    struct reader r;
    struct jv *info, *specs;
    size_t i;
    int failed = 0;
    if (!(info = connect_info(&r, tries, 0))) return 3;
    specs = jget(info, "secrets");
    for (i = 0; i < specs->len && i < MAX_SECRETS; i++) {
        const struct jv *spec = specs->items[i];
        const char *name = jstr(spec, "name"), *fetch_as = jstr(spec, "fetch_as"), *var = jstr(spec, "env_var");
        char *value;
        size_t len = 0;
        if (fetch_as && strcmp(fetch_as, "env")) continue;
        if (!var) var = name;
        if (!name_ok(name, "", 128) || !env_name_ok(var)) { say("%s: unusable env_var", name ? name : "?"); failed++; continue; }
        if (!(value = get_value(&r, name, NULL, &len))) { failed++; continue; }
        if (memchr(value, '\0', len)) { say("%s: value holds a NUL byte; not exported", name); failed++; }
        else { printf("export %s=", var); put_quoted(value, len); putchar('\n'); }
        explicit_bzero(value, len);
        free(value);
    }
    fflush(stdout);
    jfree(info);
    reader_done(&r);
    return failed ? 4 : 0;
}

/* --------------------------------------------------------------- watch */
static int cmd_watch(void) {
    int backoff = 100, first = 1;
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        struct reader r;
        struct jv *hello, *ev;
        int fd = connect_retry(first ? tries : 1, !first);
        if (fd < 0) {
            if (first) say("still waiting for %s; files follow when it answers", socket_path);
            first = 0;
            sleep_ms(backoff);
            backoff = backoff < 1000 ? backoff * 2 : 1000;
            continue;
        }
        backoff = 100;
        reader_init(&r, fd);
        hello = call(&r, "{\"op\":\"watch\"}\n");
        if (!hello || !jtrue(hello, "ok")) {
            if (hello) report_error(hello, "watch");
            jfree(hello);
            reader_done(&r);
            first = 0;
            sleep_ms(1000);
            continue;
        }
        jfree(hello);
        /* Subscribed first, then synced: a change between the two is not lost. */
        if (sync_files(3, 0) > 0 && !first && signal_number && signal_pid) kill(signal_pid, signal_number);
        first = 0;
        /* The subscription is a long-lived stream: no read timeout. */
        {
            struct timeval tv = {0, 0};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        }
        while ((ev = read_reply(&r))) {
            const char *kind = jstr(ev, "event");
            if (kind && !strcmp(kind, "changed")) {
                int rc = sync_files(3, 0);
                /* Env values of running processes cannot change; the option lets the
                 * main process re-read them (or restart) when told. */
                if (signal_number && signal_pid && rc >= 0) kill(signal_pid, signal_number);
            }
            jfree(ev);
        }
        reader_done(&r);
    }
    return 0;
}

static int cmd_ping(void) {
    struct reader r;
    struct jv *reply;
    int fd = connect_retry(tries, 0), ok;
    if (fd < 0) return 3;
    reader_init(&r, fd);
    reply = call(&r, "{\"op\":\"ping\"}\n");
    ok = reply && jtrue(reply, "ok");
    if (reply && !ok) report_error(reply, "ping");
    if (ok) printf("project %s\n", jstr(reply, "project") ? jstr(reply, "project") : "?");
    jfree(reply);
    reader_done(&r);
    return ok ? 0 : 3;
}

/* One value to stdout (for scripts); errors name the code, never a value. */
static int cmd_get(const char *name, const char *field) {
    struct reader r;
    char *value;
    size_t len = 0;
    int fd;
    if (!name_ok(name, "", 128) || (field && !name_ok(field, "-.", 128))) { say("invalid name"); return 2; }
    if ((fd = connect_retry(tries, 0)) < 0) return 3;
    reader_init(&r, fd);
    value = get_value(&r, name, field, &len);
    reader_done(&r);
    if (!value) return 1;
    fwrite(value, 1, len, stdout);
    fflush(stdout);
    explicit_bzero(value, len);
    free(value);
    return 0;
}

static int parse_signal(const char *s) {
    static const struct { const char *name; int sig; } table[] = {
        {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"TERM", SIGTERM}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}};
    size_t i;
    if (!strncmp(s, "SIG", 3)) s += 3;
    for (i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(s, table[i].name)) return table[i].sig;
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: %s env|sync|watch|ping|get NAME [FIELD] [--socket PATH] [--tries N] [--delay-ms N] [--signal SIG --signal-pid PID]\n", prog);
    return 2;
}

int main(int argc, char **argv) {
    const char *cmd, *get_name = NULL, *get_field = NULL;
    int i = 2;
    if (argc < 2) return usage();
    cmd = argv[1];
    if (!strcmp(cmd, "get")) {
        if (argc < 3) return usage();
        get_name = argv[2];
        i = 3;
        if (argc > 3 && strncmp(argv[3], "--", 2)) { get_field = argv[3]; i = 4; }
    }
    for (; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val) return usage();
        if (!strcmp(opt, "--socket")) snprintf(socket_path, sizeof socket_path, "%s", val);
        else if (!strcmp(opt, "--tries")) tries = atoi(val) > 0 ? atoi(val) : 1;
        else if (!strcmp(opt, "--delay-ms")) delay_ms = atoi(val) >= 0 ? atoi(val) : 0;
        else if (!strcmp(opt, "--signal")) { if (*val && !(signal_number = parse_signal(val))) { say("unknown signal %s", val); return 2; } }
        else if (!strcmp(opt, "--signal-pid")) signal_pid = (pid_t)atoi(val);
        else return usage();
        i++;
    }
    umask(077);
    signal(SIGPIPE, SIG_IGN);    /* a refused or restarted broker is an error reply, not a kill */
    /* Tests point this at a private tmpfs directory. */
    if (getenv("REMO_SECRETS_TMPFS_ROOT") && *getenv("REMO_SECRETS_TMPFS_ROOT")) tmpfs_root = getenv("REMO_SECRETS_TMPFS_ROOT");
    if (become_project_user()) return 5;
    if (!strcmp(cmd, "env")) return cmd_env();
    if (!strcmp(cmd, "sync")) return sync_files(tries, 0) < 0 ? 3 : 0;
    if (!strcmp(cmd, "watch")) return cmd_watch();
    if (!strcmp(cmd, "ping")) return cmd_ping();
    if (!strcmp(cmd, "get")) return cmd_get(get_name, get_field);
    return usage();
}
