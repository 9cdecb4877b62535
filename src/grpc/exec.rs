//! `rostra.v1.Exec`: a run's events (`service::exec`) as a response stream. Dropping the
//! stream (Ctrl-C in `rostractl exec`) ends the run, which stops the remote processes.

use std::time::Duration;

use futures::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::watch::WatchStream;
use crate::pb;
use crate::pb::exec_server::Exec;
use crate::service::exec::{self, ExecArgs, ExecEvent, JobSpec};
use crate::service::Api;

pub struct ExecService {
    pub service: Api,
}

#[tonic::async_trait]
impl Exec for ExecService {
    type RunStream = WatchStream<pb::ExecRunResponse>;

    #[tracing::instrument(level = "debug", skip_all)]
    async fn run(
        &self,
        request: Request<pb::ExecRunRequest>,
    ) -> Result<Response<Self::RunStream>, Status> {
        let r = request.into_inner();
        let args = ExecArgs {
            job: JobSpec {
                command: r.command,
                args: r.args,
                wait_ns: 0,
            },
            node_filter: r.node_filter,
            service_filter: r.service_filter,
            tag_filter: r.tag_filter,
            wait: Duration::from_millis(r.wait_ms),
        };
        let rx = exec::run(&self.service, args).await?;
        let stream = ReceiverStream::new(rx).map(|event| {
            use pb::ExecEventKind as K;
            let mut out = pb::ExecRunResponse::default();
            let kind = match event {
                ExecEvent::Ack { node } => {
                    out.node = node;
                    K::Ack
                }
                ExecEvent::Output { node, data } => {
                    (out.node, out.output) = (node, data);
                    K::Output
                }
                ExecEvent::Exit { node, code } => {
                    (out.node, out.exit_code) = (node, code);
                    K::Exit
                }
                ExecEvent::Declined { node, reason } => {
                    (out.node, out.reason) = (node, reason);
                    K::Declined
                }
                ExecEvent::NoAnswer { node } => {
                    out.node = node;
                    K::NoAnswer
                }
                ExecEvent::Done {
                    completed,
                    acknowledged,
                } => {
                    (out.completed, out.acknowledged) = (completed, acknowledged);
                    K::Done
                }
            };
            out.kind = kind as i32;
            Ok(out)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
