/* dx_fcgi.h: what a demix-fcgi handler sees: the request, the response
 * helpers, the route table entry and the shared lookups.
 *
 * A handler is `dx_status h(dx_req *r)`. It runs after the dispatcher has
 * matched the route, parsed the query, authenticated the caller, applied the
 * rate limits and checked (and for BODY_JSON parsed) the body. It either
 * writes a response with one of the dx_resp_* calls (which return DX_OK) or
 * returns an error status: the dispatcher then answers with the error
 * envelope, using r->err.msg when set, or the 422 validation envelope when
 * the status is DX_ERR_VALIDATION_ERROR and dx_valid_add was called.
 * Database errors answer 503 without leaking server text.
 *
 * Everything hanging off a dx_req (strings, JSON given to dx_resp_*, result
 * sets registered with the pool) belongs to r->pool and is released after the
 * response is sent.
 * Threading: one request at a time per worker process; no shared state. */
#ifndef DX_FCGI_H
#define DX_FCGI_H

#include <json-c/json.h>
#include <mysql.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>

#include "dx_config.h"
#include "dx_db.h"
#include "dx_error.h"
#include "dx_pool.h"
#include "dx_query.h"
#include "dx_util.h"

typedef struct dx_req dx_req;
typedef dx_status (*dx_handler)(dx_req *r);

/* Route flags. */
enum {
  DX_ROUTE_PUBLIC = 1 << 0,      /* no token needed */
  DX_ROUTE_AUTH = 1 << 1,        /* Bearer token needed (the default when not PUBLIC) */
  DX_ROUTE_HEAVY = 1 << 2,       /* also counts against the api_heavy bucket */
  DX_ROUTE_ADMIN = 1 << 3,       /* admin or superadmin only (403 otherwise) */
  DX_ROUTE_BODY_JSON = 1 << 4,   /* body must be a JSON object: r->body */
  DX_ROUTE_BODY_UPLOAD = 1 << 5, /* body is a file: r->body_file (never read into memory) */
};

/* One route. pattern segments: literal, `:name` (one segment) or, last,
 * `*name` (the rest of the path, at least one character). max_body 0 means
 * 1 MiB for JSON and cfg.max_upload_bytes for uploads. */
typedef struct {
  const char *method;
  const char *pattern;
  dx_handler handler;
  unsigned flags;
  long long max_body;
} dx_route;

/* The route table (routes.c) and its size. */
extern const dx_route dx_routes[];
extern const size_t dx_routes_count;

typedef struct {
  char id[DX_UUID_LEN];
  char name[65];
  char role[16]; /* user | admin | superadmin */
  char token_id[DX_UUID_LEN];
  int admin;     /* role is admin or superadmin */
} dx_user;

#define DX_MAX_PARAMS 8
#define DX_MAX_HEADERS 16

/* A body sent after the headers, in pieces, through write_fn (see
 * dx_resp_stream): 0, or nonzero when it could not be sent whole. A write
 * of 0 bytes flushes what the stream holds to the client. */
typedef int (*dx_write_fn)(void *ctx, const char *data, size_t n);
typedef int (*dx_body_fn)(void *body_ctx, dx_write_fn write_fn, void *write_ctx);

typedef struct {
  int status;                    /* 0 until a response is set */
  dx_kv headers[DX_MAX_HEADERS]; /* extra headers (pool strings) */
  size_t nheaders;
  const char *content_type;      /* NULL: no Content-Type (e.g. 204) */
  const char *body;
  size_t body_len;
  dx_body_fn body_fn;            /* a streamed body of stream_len bytes instead (NULL: none) */
  void *body_ctx;                /* pool memory: it lives until the response is sent */
  unsigned long long stream_len;
} dx_resp;

/* Reads up to n bytes of request body from the FastCGI stream: bytes read,
 * 0 at the end, -1 on error. */
typedef long (*dx_body_reader)(void *ctx, char *buf, size_t n);

/* Per-worker state the dispatcher and handlers share across requests. */
typedef struct {
  const dx_config *cfg;
  dx_db *db;                /* NULL while the database is unreachable */
  double db_retry_at;       /* dx_now() before which no reconnect is tried */
  double health_at;         /* cached /health database and engine state and its time */
  int health_db_ok;
  json_object *health_engine;
  double rate_gc_at;        /* next deletion of old rate-limit windows */
  atomic_int *senders_running; /* downloads being sent by senders, all workers (NULL: none) */
  int senders_max;
} dx_worker;

struct dx_req {
  dx_pool *pool;
  dx_worker *w;
  const dx_config *cfg;
  dx_db *db; /* set by the dispatcher for routes that need it */

  /* From the FastCGI parameters (pool strings, never NULL except body_file). */
  const char *method, *path, *query_string, *content_type, *authorization;
  const char *body_file;   /* REQUEST_BODY_FILE, or a spooled copy of stdin; NULL: none */
  long long content_length; /* -1 when absent */
  dx_body_reader read_body;
  void *read_ctx;

  dx_query query;
  dx_kv params[DX_MAX_PARAMS];
  size_t nparams;
  json_object *body; /* BODY_JSON routes: the parsed object (pool-owned) */
  dx_user user;
  int authed;
  const dx_route *route;

  /* Rate-limit headers, added to every response once set. */
  int rl_set;
  long long rl_limit, rl_remaining, rl_reset;

  dx_resp resp;
  json_object *details; /* validation details: field -> [messages] */
  dx_errbuf err;
};

/* --- request ------------------------------------------------------------- */
/* The :name value of the matched route, or NULL. */
const char *dx_req_param(const dx_req *r, const char *name);
/* The first ?name= value, or NULL. */
const char *dx_req_query(const dx_req *r, const char *name);

/* --- responses (all return DX_OK; data passed in is owned by the pool) --- */
/* {"data": data} with status (200, 201, 202). data may be NULL (null). */
dx_status dx_resp_json(dx_req *r, int status, json_object *data);
/* {"data": items, "meta": {page, page_size, total_count, total_pages}}. */
typedef struct {
  long long page, page_size;
} dx_page;
dx_status dx_resp_list(dx_req *r, json_object *items, const dx_page *pg, long long total);
/* {"error": msg, "code": code}. */
dx_status dx_resp_error(dx_req *r, int status, const char *code, const char *msg);
/* The error envelope for a dx_status: its HTTP status and name; msg NULL
 * uses dx_strerror. */
dx_status dx_resp_status(dx_req *r, dx_status s, const char *msg);
/* Status only, no body (204). */
dx_status dx_resp_empty(dx_req *r, int status);
/* Any body with a content type (copied into the pool). */
dx_status dx_resp_raw(dx_req *r, int status, const char *content_type, const char *body, size_t n);
/* A body of exactly len bytes that fn sends once the headers are out
 * (Content-Length: len), for files too large to hold: the handler checks
 * everything that can fail first, as the status cannot change once the
 * body has begun. ctx must live in the pool. Not sent for HEAD. Such a
 * body goes to a sender process (main.c); len DX_STREAM_LIVE is a live
 * stream of no set length (server-sent events), which only a sender sends:
 * without one the answer is 503 BUSY. */
#define DX_STREAM_LIVE (~0ULL)
dx_status dx_resp_stream(dx_req *r, int status, const char *content_type, unsigned long long len, dx_body_fn fn,
                         void *ctx);
/* Add a response header (both strings copied into the pool). */
void dx_resp_header(dx_req *r, const char *name, const char *value);

/* --- validation (422) ---------------------------------------------------- */
/* Record "field": ["msg", ...]; then return DX_ERR_VALIDATION_ERROR. */
void dx_valid_add(dx_req *r, const char *field, const char *msg);
int dx_valid_any(const dx_req *r);
/* The 422 envelope with the recorded details. */
dx_status dx_resp_validation(dx_req *r);

/* --- shared lookups ------------------------------------------------------ */
/* 1 if s is a canonical (lower-case) UUID, the only form ids take in URLs. */
int dx_id_valid(const char *s);
/* ?page= and ?page_size= (defaults 1 and 20, page_size at most 100). Bad
 * values are recorded with dx_valid_add and DX_ERR_VALIDATION_ERROR returned. */
dx_status dx_page_parse(dx_req *r, dx_page *pg);
/* Check that track_id names a track the caller may see (their own; any for
 * admins). DX_ERR_NOT_FOUND (also for a malformed id), DX_ERR_DB. */
dx_status dx_track_visible(dx_req *r, const char *track_id);
/* Answer with the ZIP of separation job job_id's stems (the caller has
 * checked that it may be seen): composed as it is sent, or the stems.zip an
 * older job stored (h_export.c). download_name (may be NULL) goes into
 * Content-Disposition. 404 when the job has no archive or a stem file is
 * missing. */
dx_status dx_send_stems_archive(dx_req *r, const char *job_id, const char *download_name);
/* The track as API JSON (see h_tracks.c), visible to the caller, or
 * DX_ERR_NOT_FOUND. *out is a new object the caller hands on or puts. */
dx_status dx_track_json(dx_req *r, const char *track_id, json_object **out);

/* The tracks a job request names: "track_id" (one, answered as one job) or
 * "track_ids" (a bulk request: 1 to DX_BULK_TRACKS distinct ids, answered
 * as a list of jobs). Field errors are recorded with dx_valid_add. */
#define DX_BULK_TRACKS 100
typedef struct {
  const char *ids[DX_BULK_TRACKS];
  int n;
  int bulk;
} dx_track_ids;
void dx_track_ids_parse(dx_req *r, dx_track_ids *out);
/* 1 when the caller may see every track of t; else 0 and *st is what the
 * handler returns: DX_ERR_NOT_FOUND for one track, for a bulk request the
 * 404 already answered with the unknown ids in details.track_ids. */
int dx_track_ids_visible(dx_req *r, const dx_track_ids *t, dx_status *st);

/* Queue a job of type (params_json: an object or NULL) for each of t's
 * tracks, which the caller has checked with dx_track_ids_visible, all or
 * none: the jobs go in in one transaction, so the engines take them in
 * consecutive turns of the caller's (dx_job_enqueue); a track deleted
 * meanwhile is DX_ERR_NOT_FOUND. Wakes the engine and
 * answers 202: one track {"data": {"job_id", "track_id", ...extra,
 * "status": "queued"}} with a Location header (location_prefix + job id);
 * a bulk request {"data": {"jobs": [such objects]}}. extra (may be NULL,
 * not taken) holds the fields every job's object repeats. */
dx_status dx_jobs_submit(dx_req *r, const dx_track_ids *t, const char *type, const char *params_json,
                         json_object *extra, const char *location_prefix);

/* A job row (DX_JOB_COLS, in that order) as the API shows it (GET /api/jobs/:id). */
#define DX_JOB_COLS                                                                                          \
  "id, type, status, progress, track_id, params, result, error, attempts, max_attempts, created_at, "        \
  "started_at, finished_at"
json_object *dx_job_row_json(MYSQL_ROW row);

/* JSON from database text: NULL gives null. */
json_object *dx_json_str(const char *s);
json_object *dx_json_num(const char *s);       /* a double column */
json_object *dx_json_int(const char *s);       /* an integer column */
json_object *dx_json_time(const char *s);      /* DATETIME(3) -> ISO 8601 UTC */
json_object *dx_json_parsed(const char *s);    /* a JSON text column (null when invalid) */
json_object *dx_json_double(double v);         /* a double printed compactly */
/* Duplicate a json-c string into the pool after checking it is UTF-8 without
 * NUL and at most max_chars code points; NULL (with a dx_valid_add on field)
 * otherwise. */
const char *dx_json_text(dx_req *r, json_object *v, const char *field, size_t max_chars);

/* --- dispatch (router.c) ------------------------------------------------- */
/* Find the route for method and path (HEAD runs GET routes). Returns the
 * route, filling params (values copied into p);
 * NULL when none: *path_known is 1 when the path matched with another
 * method, and allow (size allow_n) receives the Allow header value. */
const dx_route *dx_route_match(dx_pool *p, const dx_route *table, size_t n, const char *method, const char *path,
                               dx_kv params[DX_MAX_PARAMS], size_t *nparams, int *path_known, char *allow,
                               size_t allow_n);
/* Run the whole request through the table: routing, query, auth, rate
 * limits, body checks, handler. Always leaves a response in r->resp. */
void dx_dispatch(dx_req *r, const dx_route *table, size_t n);

/* Write the response as CGI-style headers and body through write_fn: 0,
 * or -1 when the connection failed (a streamed body may then be cut). */
int dx_resp_send(dx_req *r, dx_write_fn write_fn, void *ctx);

/* Reason phrase for an HTTP status. */
const char *dx_http_reason(int status);

/* --- auth and limits (auth.c) -------------------------------------------- */
/* Resolve "Bearer <token>" to r->user. DX_ERR_UNAUTHORIZED (missing or
 * invalid), DX_ERR_DB. */
dx_status dx_auth(dx_req *r);
/* Count one request in bucket ("auth" or "heavy") for the caller's token,
 * limit per minute. Sets r->rl_*; DX_ERR_RATE_LIMITED when over. */
dx_status dx_rate_check(dx_req *r, const char *bucket, int limit);

/* Worker-level database handle: connects (or reconnects at most once a
 * second) and returns it, or NULL when the database is unreachable. */
dx_db *dx_worker_db(dx_worker *w);

#endif
