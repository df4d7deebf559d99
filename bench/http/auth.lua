-- wrk script: send the API token from the environment (DEMIX_BENCH_TOKEN).
local token = os.getenv("DEMIX_BENCH_TOKEN") or ""
wrk.headers["Authorization"] = "Bearer " .. token
