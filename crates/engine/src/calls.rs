//! The calls into a connector. Each runs in a fresh instance, metered and under the
//! wall-clock timeout; a failed call is named after the limit it hit, or is a trap.

use tracing::Instrument;
use wasmtime::Store;
use wasmtime::component::ResourceTableError;
use wasmtime_wasi_http::FieldMapError;

use crate::answer_size;
use crate::contract::{Configured, Instance, Pre, v0_1};
use crate::metrics::EngineMetrics;
use crate::state::{CallState, GrowthDenied};
use crate::{CallContext, ConnectorEngine, EngineError, Limit, LoadedConnector, wit};

impl ConnectorEngine {
    /// Turns the outcome of a call run under the wall-clock timeout into a result, naming the
    /// limit, connector and call on failure.
    fn conclude<R>(
        &self,
        connector: &LoadedConnector,
        call: &'static str,
        store: &Store<CallState>,
        outcome: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
    ) -> Result<R, EngineError> {
        match outcome {
            Ok(Ok(value)) => match store.data().budget.exceeded() {
                // The guest saw a failed request; the call still ends on the limit it hit.
                Some(over) => {
                    Err(self.limit_hit(connector, call, Limit::HostBuffers, over.to_string()))
                }
                None => Ok(value),
            },
            Ok(Err(e)) => Err(self.classify(connector, call, store, e)),
            Err(_) => {
                let detail = format!("{:?}", self.limits.wall_timeout);
                Err(self.limit_hit(connector, call, Limit::WallClock, detail))
            }
        }
    }

    /// Counts and logs a limit hit, and names it.
    fn limit_hit(
        &self,
        connector: &LoadedConnector,
        call: &'static str,
        limit: Limit,
        detail: String,
    ) -> EngineError {
        EngineMetrics::bump(&self.metrics.limit_hits);
        tracing::warn!(connector = %connector.label, call, %limit, %detail, "connector call stopped by a limit");
        EngineError::LimitExceeded {
            connector: connector.label.clone(),
            call,
            limit,
            detail,
        }
    }

    /// Names the limit a failed call hit, from the trap code, the error's cause or the
    /// store's records; anything else is a trap.
    pub(crate) fn classify(
        &self,
        connector: &LoadedConnector,
        call: &'static str,
        store: &Store<CallState>,
        e: wasmtime::Error,
    ) -> EngineError {
        let limit = |limit: Limit, detail: String| self.limit_hit(connector, call, limit, detail);
        if store.data().cpu_exceeded
            || matches!(
                e.downcast_ref::<wasmtime::Trap>(),
                Some(wasmtime::Trap::Interrupt)
            )
        {
            return limit(Limit::Cpu, format!("{:?}", self.limits.cpu_deadline));
        }
        let denied = e
            .downcast_ref::<GrowthDenied>()
            .cloned()
            .or_else(|| store.data().limits.hit.clone());
        if let Some(denied) = denied {
            return limit(Limit::Memory, denied.to_string());
        }
        if table_full(&e) {
            return limit(
                Limit::Resources,
                format!("{} live resources", self.limits.max_resources),
            );
        }
        if header_map_full(&e) {
            return limit(
                Limit::HeaderMap,
                format!("{} bytes per header map", self.limits.max_header_map_bytes),
            );
        }
        if let Some(over) = store.data().budget.exceeded() {
            return limit(Limit::HostBuffers, over.to_string());
        }
        EngineMetrics::bump(&self.metrics.traps);
        let detail = format!("{e:#}");
        tracing::warn!(connector = %connector.label, call, %detail, "connector call trapped");
        EngineError::Trap {
            connector: connector.label.clone(),
            call,
            detail,
        }
    }

    /// Runs the export `call` in a fresh instance, metered, under the wall-clock timeout.
    async fn call<R>(
        &self,
        connector: &LoadedConnector,
        ctx: &CallContext,
        stream: Option<&str>,
        call: &'static str,
        export: impl AsyncFnOnce(&Instance, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, EngineError> {
        // Times the call (wall, and polled time: the guest's own work) for a profiler.
        let timed = tracing::debug_span!("connector_call", call);
        let (mut store, instance) = self
            .instantiate(connector, ctx, stream)
            .instrument(timed.clone())
            .await?;
        let cpu = store.data().cpu.clone();
        let outcome = tokio::time::timeout(
            self.limits.wall_timeout,
            cpu.meter(export(&instance, &mut store)),
        )
        .instrument(timed)
        .await;
        self.conclude(connector, call, &store, outcome)
    }

    /// Calls `describe`; an answer over its cap is a limit hit. A 0.1 component declares
    /// nothing: the answer is what 0.1 types.
    pub async fn describe(
        &self,
        connector: &LoadedConnector,
        ctx: &CallContext,
    ) -> Result<wit::types::ConnectorInfo, EngineError> {
        if let Pre::V0_1(_) = connector.pre {
            return Ok(v0_1::describe(&connector.name));
        }
        let info = self
            .call(
                connector,
                ctx,
                None,
                "describe",
                async |instance, store| match instance {
                    Instance::V0_2(i) => i.sluice_connector_connector().call_describe(store).await,
                    Instance::V0_1(_) => unreachable!("answered above"),
                },
            )
            .await?;
        let bytes = answer_size::describe_bytes(&info);
        let cap = (Limit::DescribeSize, self.limits.max_describe_bytes);
        self.check_answer(connector, "describe", cap, bytes)?;
        Ok(info)
    }

    /// Refuses an answer of `bytes` over `cap`, as a hit of `limit`.
    fn check_answer(
        &self,
        connector: &LoadedConnector,
        call: &'static str,
        (limit, cap): (Limit, usize),
        bytes: usize,
    ) -> Result<(), EngineError> {
        if bytes <= cap {
            return Ok(());
        }
        let detail = format!("the answer holds {bytes} bytes, cap {cap} bytes");
        Err(self.limit_hit(connector, call, limit, detail))
    }

    /// Calls `configure`.
    pub async fn configure(
        &self,
        connector: &LoadedConnector,
        ctx: &CallContext,
        settings: &wit::types::Settings,
        host: &wit::types::HostContext,
    ) -> Result<Configured, EngineError> {
        let old = match connector.pre {
            Pre::V0_1(_) => match v0_1::settings(settings) {
                Ok(old) => Some((old, v0_1::host_context(host))),
                Err(errors) => return Ok(Err(errors)),
            },
            Pre::V0_2(_) => None,
        };
        self.call(
            connector,
            ctx,
            None,
            "configure",
            async |instance, store| {
                Ok(match (instance, &old) {
                    (Instance::V0_2(i), _) => {
                        let export = i.sluice_connector_connector();
                        export.call_configure(store, settings, host).await?
                    }
                    (Instance::V0_1(i), Some((settings, host))) => {
                        let export = i.sluice_connector_plugin();
                        export
                            .call_configure(store, settings, host)
                            .await?
                            .map(v0_1::configured)
                            .map_err(v0_1::field_errors)
                    }
                    (Instance::V0_1(_), None) => unreachable!("converted above"),
                })
            },
        )
        .await
    }

    /// Calls `test`. A 0.1 component that cannot run on the session fails the test with the
    /// reason, without an instance.
    pub async fn test(
        &self,
        connector: &LoadedConnector,
        ctx: &CallContext,
        session: &wit::types::Session,
    ) -> Result<wit::types::TestReport, EngineError> {
        let old = match connector.pre {
            Pre::V0_1(_) => match v0_1::session(session) {
                Ok(old) => Some(old),
                Err(failure) => {
                    return Ok(wit::types::TestReport {
                        failure: Some(failure),
                        org: None,
                        user: None,
                        api_usage: None,
                        probes: Vec::new(),
                    });
                }
            },
            Pre::V0_2(_) => None,
        };
        self.call(connector, ctx, None, "test", async |instance, store| {
            Ok(match (instance, &old) {
                (Instance::V0_2(i), _) => {
                    i.sluice_connector_connector()
                        .call_test(store, session)
                        .await?
                }
                (Instance::V0_1(i), Some(session)) => v0_1::test_report(
                    i.sluice_connector_plugin()
                        .call_test(store, session)
                        .await?,
                ),
                (Instance::V0_1(_), None) => unreachable!("converted above"),
            })
        })
        .await
    }

    /// Calls `account`: which account the session's credentials belong to. For a 0.1
    /// component, the organisation its identity URL names.
    pub async fn account(
        &self,
        connector: &LoadedConnector,
        ctx: &CallContext,
        session: &wit::types::Session,
    ) -> Result<Result<wit::types::AccountInfo, wit::types::Failure>, EngineError> {
        if let Pre::V0_1(_) = connector.pre {
            return Ok(v0_1::account(session));
        }
        self.call(
            connector,
            ctx,
            None,
            "account",
            async |instance, store| match instance {
                Instance::V0_2(i) => {
                    i.sluice_connector_connector()
                        .call_account(store, session)
                        .await
                }
                Instance::V0_1(_) => unreachable!("answered above"),
            },
        )
        .await
    }

    /// Calls `discover`; an answer over its cap is a limit hit. Contract 0.1 has no schemas:
    /// its components get [`EngineError::NotInContract`].
    pub async fn discover(
        &self,
        connector: &LoadedConnector,
        ctx: &CallContext,
        session: &wit::types::Session,
    ) -> Result<Result<Vec<wit::types::StreamSchema>, wit::types::Failure>, EngineError> {
        if let Pre::V0_1(_) = connector.pre {
            return Err(EngineError::NotInContract {
                connector: connector.label.clone(),
                call: "discover",
                contract: connector.contract,
            });
        }
        let answer = self
            .call(
                connector,
                ctx,
                None,
                "discover",
                async |instance, store| match instance {
                    Instance::V0_2(i) => {
                        i.sluice_connector_connector()
                            .call_discover(store, session)
                            .await
                    }
                    Instance::V0_1(_) => unreachable!("refused above"),
                },
            )
            .await?;
        if let Ok(streams) = &answer {
            let bytes = answer_size::discover_bytes(streams);
            let cap = (Limit::DiscoverSize, self.limits.max_discover_bytes);
            self.check_answer(connector, "discover", cap, bytes)?;
        }
        Ok(answer)
    }

    /// Calls `pull`; a page over the size cap is a limit hit, not a page.
    pub async fn pull(
        &self,
        connector: &LoadedConnector,
        ctx: &CallContext,
        session: &wit::types::Session,
        request: &wit::types::PullRequest,
    ) -> Result<Result<wit::types::Page, wit::types::Failure>, EngineError> {
        let old = match connector.pre {
            Pre::V0_1(_) => match v0_1::session(session) {
                Ok(old) => Some((old, v0_1::pull_request(request))),
                Err(failure) => return Ok(Err(failure)),
            },
            Pre::V0_2(_) => None,
        };
        let stream = Some(request.stream.as_str());
        let result = self
            .call(connector, ctx, stream, "pull", async |instance, store| {
                Ok(match (instance, &old) {
                    (Instance::V0_2(i), _) => {
                        i.sluice_connector_connector()
                            .call_pull(store, session, request)
                            .await?
                    }
                    (Instance::V0_1(i), Some((session, request))) => i
                        .sluice_connector_plugin()
                        .call_pull(store, session, request)
                        .await?
                        .map(v0_1::page)
                        .map_err(v0_1::failure),
                    (Instance::V0_1(_), None) => unreachable!("converted above"),
                })
            })
            .await?;
        if let Ok(page) = &result {
            let bytes: usize = page
                .rows
                .iter()
                .map(|r| r.key.len() + r.cursor.len() + r.json.len())
                .sum();
            if bytes > self.limits.max_page_bytes {
                let detail = format!(
                    "{bytes} bytes in {} rows, cap {} bytes",
                    page.rows.len(),
                    self.limits.max_page_bytes
                );
                return Err(self.limit_hit(connector, "pull", Limit::PageSize, detail));
            }
        }
        Ok(result)
    }
}

/// Whether a call failed because its resource table was full.
fn table_full(e: &wasmtime::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<ResourceTableError>()
            .is_some_and(|e| matches!(e, ResourceTableError::Full))
    })
}

/// Whether a call failed because a header map it built grew past its cap.
fn header_map_full(e: &wasmtime::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<FieldMapError>(),
            Some(FieldMapError::TotalSizeTooBig | FieldMapError::TooManyFields)
        )
    })
}
