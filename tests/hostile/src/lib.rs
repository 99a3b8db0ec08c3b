//! A test connector whose behaviour the host's tests choose per call, through the `behaviour`
//! setting (`settings.extra`). Most behaviours are hostile: each one attacks one of the
//! engine's limits or policies, so the engine's tests can show that it is contained.
//!
//! | `behaviour` | in `pull` (and `test`) |
//! |---|---|
//! | (absent) | `configure` traps (as in every build with `SLUICE_HOSTILE_BROKEN` set) |
//! | `ok` | returns one row; `fetch` GETs `url` and returns status and body as a row |
//! | `loop` | spins forever (CPU deadline) |
//! | `alloc` | allocates without bound (memory cap) |
//! | `undeclared` | GETs `https://undeclared.example/` (allow-list) |
//! | `fetch` | GETs `url` (private addresses, retries, refresh, header spy) |
//! | `post` | POSTs `size` bytes to `url`, streaming the body |
//! | `fs-env` | reads files, directories and environment variables |
//! | `pull-fetch` | GETs `url` in `pull` only (`test` does nothing) |
//! | `trap` | GETs `url` if set, then panics mid-pull (`test` succeeds) |
//! | `big-page` | returns `size` bytes of rows (page size cap) |
//! | `header-spy` | GETs `url`, tries to set `Authorization` (and the `set-header` header), logs every header it can see |
//! | `pager` | pages through `url/page?after=N` (hot-swap tests) |
//! | `sf-pager` | pages Case Ids through the Salesforce REST query API at `url` (401: re-authorization required) |
//! | `stall-spin` | opens a POST to `url` whose body never ends, then spins (CPU deadline) |
//! | `stall-wait` | opens a POST to `url` whose body never ends, then waits for the response |
//! | `hoard` | GETs `url` `count` times and keeps every response unread (host buffer budget) |
//! | `header-flood` | keeps `count` header maps with one `size`-byte value each (resource cap) |
//! | `stall` | answers `partial` with no rows and the same checkpoint, forever |
//! | `endless` | answers `partial` with one new row and a new checkpoint, forever |
//! | `rate-limited` | fails `rate-limited`, retry after `retry-after` s (default `u32::MAX`) |
//! | `log-forge` | logs a line with newlines and escape codes, and a `size`-byte field |
//!
//! `configure` declares the hosts in the `hosts` setting (comma-separated), and its OAuth plan
//! uses the `authorize-url`, `token-url` and `revoke-url` settings when they are set: a hostile
//! version choosing its own destinations.
//!
//! Natively this crate is empty; the component is built for `wasm32-wasip2`.

#[cfg(target_arch = "wasm32")]
// wit-bindgen's generated exports are `unsafe` glue around the canonical ABI.
#[allow(unsafe_code)]
mod component;
