//! gRPC between a node's roles and an owner in the same process without sockets: every
//! connection is a pair of in-memory pipes. The simulation runs its writers and readers over
//! the wire module this way, so the conversions, the commit stream and the pushed tails run
//! under its faults and crashes, and a run still replays exactly (no kernel, no real time).

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint};

use crate::server::IndexPortsService;

/// Bytes each direction of an in-memory connection buffers.
const PIPE_BYTES: usize = 1 << 20;

/// Connections the server has not accepted yet.
const PENDING_CONNECTIONS: usize = 16;

/// The server's end of one in-memory connection.
struct ServerEnd(DuplexStream);

impl Connected for ServerEnd {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for ServerEnd {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ServerEnd {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Serves `service` on in-memory connections; returns a channel that opens them and the
/// server's task (abort it to cut every connection, as a process dying would).
pub fn serve_in_memory(service: IndexPortsService) -> (Channel, JoinHandle<()>) {
    let (connections, incoming) = mpsc::channel::<std::io::Result<ServerEnd>>(PENDING_CONNECTIONS);
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming(ReceiverStream::new(incoming))
            .await;
    });
    let channel = Endpoint::from_static("http://in-memory.index").connect_with_connector_lazy(
        tower::service_fn(move |_: tonic::transport::Uri| {
            let connections = connections.clone();
            async move {
                let (client, server) = tokio::io::duplex(PIPE_BYTES);
                connections
                    .send(Ok(ServerEnd(server)))
                    .await
                    .map_err(|_| std::io::Error::other("the in-memory index server stopped"))?;
                Ok::<_, std::io::Error>(TokioIo::new(client))
            }
        }),
    );
    (channel, server)
}
