/* h_tracks.c: GET/PATCH/DELETE of tracks and the track lookups other
 * handlers share (dx_track_visible, dx_track_json). Uploads are in
 * h_upload.c. A user sees their own tracks, an admin every track; anything
 * else answers 404. One request at a time per worker process. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dx_fcgi.h"
#include "dx_jobs.h"

#define TRACK_COLS                                                                                            \
  "id, title, artist, album, bpm, musical_key, tags, duration, sample_rate, channels, frames, format, "       \
  "file_size, original_name, file_path, created_at, updated_at"

static json_object *track_row_json(MYSQL_ROW row) {
  json_object *t = json_object_new_object();
  json_object_object_add(t, "id", dx_json_str(row[0]));
  json_object_object_add(t, "title", dx_json_str(row[1]));
  json_object_object_add(t, "artist", dx_json_str(row[2]));
  json_object_object_add(t, "album", dx_json_str(row[3]));
  json_object_object_add(t, "bpm", dx_json_num(row[4]));
  json_object_object_add(t, "key", dx_json_str(row[5]));
  json_object *tags = dx_json_parsed(row[6]);
  if (!json_object_is_type(tags, json_type_array)) {
    json_object_put(tags);
    tags = json_object_new_array();
  }
  json_object_object_add(t, "tags", tags);
  json_object_object_add(t, "duration", dx_json_num(row[7]));
  json_object_object_add(t, "sample_rate", dx_json_int(row[8]));
  json_object_object_add(t, "channels", dx_json_int(row[9]));
  json_object_object_add(t, "frames", dx_json_int(row[10]));
  json_object_object_add(t, "format", dx_json_str(row[11]));
  json_object_object_add(t, "file_size", dx_json_int(row[12]));
  json_object_object_add(t, "original_name", dx_json_str(row[13]));
  char url[1200];
  snprintf(url, sizeof url, "/files/%s", row[14] ? row[14] : "");
  json_object_object_add(t, "file_url", json_object_new_string(url));
  json_object_object_add(t, "created_at", dx_json_time(row[15]));
  json_object_object_add(t, "updated_at", dx_json_time(row[16]));
  return t;
}

dx_status dx_track_visible(dx_req *r, const char *track_id) {
  if (!track_id || !dx_id_valid(track_id)) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "track not found");
  long long one = 0;
  dx_status st = dx_db_query_ll(r->db, &one, &r->err, "SELECT 1 FROM tracks WHERE id = %s AND (%d OR user_id = %s)",
                                track_id, r->user.admin, r->user.id);
  if (st == DX_ERR_NOT_FOUND) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "track not found");
  return st;
}

dx_status dx_track_json(dx_req *r, const char *track_id, json_object **out) {
  *out = NULL;
  if (!track_id || !dx_id_valid(track_id)) return dx_fail(&r->err, DX_ERR_NOT_FOUND, "track not found");
  MYSQL_RES *res;
  dx_status st = dx_db_query(r->db, &res, &r->err,
                             "SELECT " TRACK_COLS " FROM tracks WHERE id = %s AND (%d OR user_id = %s)", track_id,
                             r->user.admin, r->user.id);
  if (st != DX_OK) return st;
  MYSQL_ROW row = mysql_fetch_row(res);
  if (row) *out = track_row_json(row);
  mysql_free_result(res);
  return row ? DX_OK : dx_fail(&r->err, DX_ERR_NOT_FOUND, "track not found");
}

dx_status dx_h_tracks_list(dx_req *r) {
  dx_page pg;
  dx_status st = dx_page_parse(r, &pg);
  if (st != DX_OK) return st;
  long long total = 0;
  st = dx_db_query_ll(r->db, &total, &r->err, "SELECT COUNT(*) FROM tracks WHERE (%d OR user_id = %s)", r->user.admin,
                      r->user.id);
  if (st != DX_OK) return st;
  MYSQL_RES *res;
  st = dx_db_query(r->db, &res, &r->err,
                   "SELECT " TRACK_COLS " FROM tracks WHERE (%d OR user_id = %s) "
                   "ORDER BY created_at DESC, id DESC LIMIT %lld OFFSET %lld",
                   r->user.admin, r->user.id, pg.page_size, (pg.page - 1) * pg.page_size);
  if (st != DX_OK) return st;
  json_object *items = json_object_new_array();
  MYSQL_ROW row;
  while ((row = mysql_fetch_row(res))) json_object_array_add(items, track_row_json(row));
  mysql_free_result(res);
  return dx_resp_list(r, items, &pg, total);
}

dx_status dx_h_tracks_get(dx_req *r) {
  json_object *t;
  dx_status st = dx_track_json(r, dx_req_param(r, "id"), &t);
  return st == DX_OK ? dx_resp_json(r, 200, t) : st;
}

/* A nullable text field of a PATCH body. set: present; value NULL for null. */
static void patch_text(dx_req *r, json_object *v, const char *field, size_t max, int *set, const char **value) {
  *set = 1;
  *value = NULL;
  if (v && !json_object_is_type(v, json_type_null)) *value = dx_json_text(r, v, field, max);
}

dx_status dx_h_tracks_patch(dx_req *r) {
  const char *id = dx_req_param(r, "id");
  dx_status st = dx_track_visible(r, id);
  if (st != DX_OK) return st;
  int set_title = 0, set_artist = 0, set_album = 0, set_bpm = 0, set_key = 0, set_tags = 0;
  const char *title = NULL, *artist = NULL, *album = NULL, *key = NULL, *tags = NULL;
  double bpm = NAN;
  json_object_object_foreach(r->body, name, v) {
    if (!strcmp(name, "title")) patch_text(r, v, name, 255, &set_title, &title);
    else if (!strcmp(name, "artist")) patch_text(r, v, name, 255, &set_artist, &artist);
    else if (!strcmp(name, "album")) patch_text(r, v, name, 255, &set_album, &album);
    else if (!strcmp(name, "key")) patch_text(r, v, name, 32, &set_key, &key);
    else if (!strcmp(name, "bpm")) {
      set_bpm = 1;
      if (v && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
          dx_valid_add(r, "bpm", "must be a number or null");
        else {
          bpm = json_object_get_double(v);
          if (!(bpm > 0 && bpm <= 10000)) dx_valid_add(r, "bpm", "must be greater than 0 and at most 10000");
        }
      }
    } else if (!strcmp(name, "tags")) {
      set_tags = 1;
      if (v && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > 64) {
          dx_valid_add(r, "tags", "must be an array of at most 64 strings, or null");
        } else {
          int ok = 1;
          for (size_t i = 0; ok && i < json_object_array_length(v); i++)
            ok = dx_json_text(r, json_object_array_get_idx(v, i), "tags", 64) != NULL;
          if (ok) tags = dx_pool_strdup(r->pool, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
        }
      }
    } else {
      dx_valid_add(r, name, "unknown field");
    }
  }
  if (dx_valid_any(r)) return DX_ERR_VALIDATION_ERROR;
  st = dx_db_exec(r->db, NULL, &r->err,
                  "UPDATE tracks SET title = IF(%d, %s, title), artist = IF(%d, %s, artist), "
                  "album = IF(%d, %s, album), bpm = IF(%d, %f, bpm), bpm_source = IF(%d, %s, bpm_source), "
                  "musical_key = IF(%d, %s, musical_key), key_source = IF(%d, %s, key_source), "
                  "tags = IF(%d, %s, tags), updated_at = UTC_TIMESTAMP(3) WHERE id = %s",
                  set_title, title, set_artist, artist, set_album, album, set_bpm, bpm, set_bpm,
                  isnan(bpm) ? NULL : "user", set_key, key, set_key, key ? "user" : NULL, set_tags, tags, id);
  if (st != DX_OK) return st;
  json_object *t;
  st = dx_track_json(r, id, &t);
  return st == DX_OK ? dx_resp_json(r, 200, t) : st;
}

dx_status dx_h_tracks_delete(dx_req *r) {
  const char *id = dx_req_param(r, "id");
  dx_status st = dx_track_visible(r, id);
  if (st != DX_OK) return st;
  MYSQL_RES *res;
  st = dx_db_query(r->db, &res, &r->err, "SELECT id FROM jobs WHERE track_id = %s AND status IN ('queued', 'running')",
                   id);
  if (st != DX_OK) return st;
  MYSQL_ROW row;
  while ((row = mysql_fetch_row(res))) {
    dx_errbuf e;
    dx_status cs = dx_job_cancel(r->db, row[0], NULL, &e);
    if (cs != DX_OK && cs != DX_ERR_EXISTS && cs != DX_ERR_NOT_FOUND) {
      mysql_free_result(res);
      return dx_fail(&r->err, cs, "cannot cancel job %s: %s", row[0], e.msg);
    }
  }
  mysql_free_result(res);
  /* Separation jobs keep their stems under stems/<job_id>; collect them
   * before the delete sets the jobs' track_id to NULL. */
  MYSQL_RES *sep;
  st = dx_db_query(r->db, &sep, &r->err, "SELECT id FROM jobs WHERE track_id = %s AND type = 'separate'", id);
  if (st != DX_OK) return st;
  if (dx_pool_result_on_cleanup(r->pool, sep)) {
    mysql_free_result(sep);
    return DX_ERR_NOMEM;
  }
  st = dx_db_exec(r->db, NULL, &r->err, "DELETE FROM tracks WHERE id = %s", id);
  if (st != DX_OK) return st;
  /* The rows are gone first (stems cascade): a crash here leaves files
   * without a row, never a row without files. */
  char dir[1200];
  snprintf(dir, sizeof dir, "%s/tracks/%s", r->cfg->storage_dir, id);
  if (dx_rmtree(dir) != DX_OK) DX_WARN("cannot remove %s", dir);
  while ((row = mysql_fetch_row(sep))) {
    if (!dx_uuid_valid(row[0])) continue;
    snprintf(dir, sizeof dir, "%s/stems/%s", r->cfg->storage_dir, row[0]);
    if (dx_rmtree(dir) != DX_OK) DX_WARN("cannot remove %s", dir);
  }
  return dx_resp_empty(r, 204);
}
