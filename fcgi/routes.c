/* routes.c: the route table. One line per route: method, path pattern
 * (`:name` one segment, `*name` the rest), handler, flags, body limit.
 * Order matters only between patterns that could both match (a literal
 * segment before a `:param` at the same place). To add a route, declare its
 * handler below and add one line to the table. Read-only data. */
#include "dx_fcgi.h"

dx_status dx_h_health(dx_req *r);
dx_status dx_h_tracks_create(dx_req *r);
dx_status dx_h_tracks_list(dx_req *r);
dx_status dx_h_tracks_get(dx_req *r);
dx_status dx_h_tracks_patch(dx_req *r);
dx_status dx_h_tracks_delete(dx_req *r);
dx_status dx_h_jobs_list(dx_req *r);
dx_status dx_h_jobs_probe(dx_req *r);
dx_status dx_h_jobs_get(dx_req *r);
dx_status dx_h_jobs_cancel(dx_req *r);
dx_status dx_h_jobs_cancel_all(dx_req *r);
dx_status dx_h_jobs_events(dx_req *r);
dx_status dx_h_files(dx_req *r);
dx_status dx_h_processing_separate(dx_req *r);
dx_status dx_h_processing_job(dx_req *r);
dx_status dx_h_processing_models(dx_req *r);
dx_status dx_h_export_stem(dx_req *r);
dx_status dx_h_export_stems(dx_req *r);
dx_status dx_h_analysis_analyze(dx_req *r);
dx_status dx_h_analysis_job(dx_req *r);
dx_status dx_h_analysis_get(dx_req *r);
dx_status dx_h_export_analysis(dx_req *r);

#define AUTH DX_ROUTE_AUTH
#define HEAVY (DX_ROUTE_AUTH | DX_ROUTE_HEAVY)

const dx_route dx_routes[] = {
    {"GET", "/health", dx_h_health, DX_ROUTE_PUBLIC, 0},

    {"POST", "/api/tracks", dx_h_tracks_create, AUTH | DX_ROUTE_BODY_UPLOAD, 0},
    {"GET", "/api/tracks", dx_h_tracks_list, AUTH, 0},
    {"GET", "/api/tracks/:id", dx_h_tracks_get, AUTH, 0},
    {"PATCH", "/api/tracks/:id", dx_h_tracks_patch, AUTH | DX_ROUTE_BODY_JSON, 64 << 10},
    {"DELETE", "/api/tracks/:id", dx_h_tracks_delete, AUTH, 0},

    {"GET", "/api/jobs", dx_h_jobs_list, AUTH, 0},
    {"DELETE", "/api/jobs", dx_h_jobs_cancel_all, AUTH, 0},
    {"POST", "/api/jobs/probe", dx_h_jobs_probe, HEAVY | DX_ROUTE_BODY_JSON, 16 << 10},
    {"GET", "/api/jobs/:id", dx_h_jobs_get, AUTH, 0},
    {"DELETE", "/api/jobs/:id", dx_h_jobs_cancel, AUTH, 0},
    {"GET", "/api/jobs/:id/events", dx_h_jobs_events, AUTH, 0},

    {"GET", "/files/*path", dx_h_files, AUTH, 0},

    {"POST", "/api/processing/separate", dx_h_processing_separate, HEAVY | DX_ROUTE_BODY_JSON, 16 << 10},
    {"GET", "/api/processing/job/:id", dx_h_processing_job, AUTH, 0},
    {"GET", "/api/processing/models", dx_h_processing_models, AUTH, 0},
    {"GET", "/export/stem/:id", dx_h_export_stem, AUTH, 0},
    {"GET", "/export/stems/:track_id", dx_h_export_stems, AUTH, 0},

    {"POST", "/api/analysis/analyze", dx_h_analysis_analyze, HEAVY | DX_ROUTE_BODY_JSON, 16 << 10},
    {"GET", "/api/analysis/job/:id", dx_h_analysis_job, AUTH, 0},
    {"GET", "/api/analysis/:track_id", dx_h_analysis_get, AUTH, 0},
    {"GET", "/export/analysis/:track_id", dx_h_export_analysis, AUTH, 0},
};

const size_t dx_routes_count = sizeof dx_routes / sizeof dx_routes[0];
