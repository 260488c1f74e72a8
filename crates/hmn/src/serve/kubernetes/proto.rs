//! The kubelet's pod-resources API, `v1.PodResourcesLister/List`, as gRPC over its unix socket.
//!
//! The messages are declared by hand with prost's derives rather than generated: generating
//! them needs `protoc` (or a proto compiler crate and a build script) at every build, for five
//! messages of which we read nine fields. Only those fields are declared, with the field
//! numbers of kubelet's `pkg/apis/podresources/v1/api.proto`; protobuf decoders skip the
//! fields they do not know (CPU ids, memory, topology, dynamic resources), so the kubelet's
//! full answer decodes. The fake kubelet in `tests/serve_kubernetes.rs` sends those other
//! fields too, to prove it.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// `ListPodResourcesRequest {}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodResourcesRequest {}

/// `ListPodResourcesResponse`: every pod on the node with the resources assigned to it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodResourcesResponse {
    #[prost(message, repeated, tag = "1")]
    pub pod_resources: Vec<PodResources>,
}

/// `PodResources`: a pod, by name and namespace (the message carries no UID).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodResources {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub namespace: String,
    #[prost(message, repeated, tag = "3")]
    pub containers: Vec<ContainerResources>,
}

/// `ContainerResources`: a container, by name (the message carries no container id).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerResources {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub devices: Vec<ContainerDevices>,
}

/// `ContainerDevices`: devices of one resource (`nvidia.com/gpu`, `nvidia.com/mig-1g.10gb`)
/// given to a container, by the ids the device plugin advertised (NVIDIA's plugin: GPU and
/// MIG UUIDs).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerDevices {
    #[prost(string, tag = "1")]
    pub resource_name: String,
    #[prost(string, repeated, tag = "2")]
    pub device_ids: Vec<String>,
}

/// The gRPC path of `List`.
pub const LIST_PATH: &str = "/v1.PodResourcesLister/List";

/// Why a `List` call gave no answer.
#[derive(Debug)]
pub enum ListError {
    /// No socket at the path (the kubelet is not running here, or the path is not mounted).
    NoSocket(PathBuf),
    /// Connecting or the call failed.
    Call(String),
    /// No answer within the timeout.
    TimedOut(Duration),
}

impl std::fmt::Display for ListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSocket(path) => write!(
                f,
                "no kubelet pod-resources socket at {} (mount the kubelet's \
                 /var/lib/kubelet/pod-resources into the pod, or point --pod-resources-socket \
                 at it)",
                path.display()
            ),
            Self::Call(e) => write!(f, "the kubelet's List call failed: {e}"),
            Self::TimedOut(t) => write!(
                f,
                "the kubelet did not answer List within {:.1} s",
                t.as_secs_f64()
            ),
        }
    }
}

/// One `List` call on the kubelet at `socket`, bounded by `timeout` as a whole (connect,
/// call, answer).
pub async fn list(socket: &Path, timeout: Duration) -> Result<ListPodResourcesResponse, ListError> {
    if !socket.exists() {
        return Err(ListError::NoSocket(socket.to_owned()));
    }
    match tokio::time::timeout(timeout, call(socket.to_owned())).await {
        Ok(answer) => answer.map_err(ListError::Call),
        Err(_) => Err(ListError::TimedOut(timeout)),
    }
}

async fn call(socket: PathBuf) -> Result<ListPodResourcesResponse, String> {
    // The URI is required by the HTTP/2 layer and never resolved: the connector dials the socket.
    let channel = tonic::transport::Endpoint::from_static("http://kubelet.invalid")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(&socket)
                    .await
                    .map_err(|e| connect_error(&socket, e))?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| error_chain(&e))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| error_chain(&e))?;
    let codec =
        tonic_prost::ProstCodec::<ListPodResourcesRequest, ListPodResourcesResponse>::default();
    grpc.unary(
        tonic::Request::new(ListPodResourcesRequest {}),
        http::uri::PathAndQuery::from_static(LIST_PATH),
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
    .map_err(|status| format!("{}: {}", status.code(), status.message()))
}

/// A failed connect to the socket, saying what to do when it is a matter of permissions.
fn connect_error(socket: &Path, error: std::io::Error) -> std::io::Error {
    let hint = match error.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "; the kubelet's socket is root's: run hmn serve as root (or as the socket's owner)"
        }
        std::io::ErrorKind::ConnectionRefused => "; is the kubelet running?",
        _ => "",
    };
    std::io::Error::new(
        error.kind(),
        format!("connecting to {}: {error}{hint}", socket.display()),
    )
}

/// An error with its sources (tonic's transport error says "transport error" and keeps the
/// cause, such as "Connection refused", in its source).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source's text in their own.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_now(socket: &Path, timeout: Duration) -> Result<ListPodResourcesResponse, ListError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(list(socket, timeout))
    }

    #[test]
    fn a_socket_nobody_listens_on_asks_whether_the_kubelet_runs() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("kubelet.sock");
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        let error = list_now(&socket, Duration::from_secs(30)).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, ListError::Call(_)), "{text}");
        assert!(
            text.contains(&format!("connecting to {}", socket.display()))
                && text.contains("is the kubelet running?"),
            "{text}"
        );
    }

    #[test]
    fn a_kubelet_that_accepts_and_never_answers_is_given_up_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("kubelet.sock");
        let _listening = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let error = list_now(&socket, Duration::from_millis(100)).unwrap_err();
        assert!(
            matches!(error, ListError::TimedOut(t) if t == Duration::from_millis(100)),
            "{error}"
        );
    }
}
