//! A TCP proxy on 127.0.0.1 that a test can cut (every open connection dropped, new ones
//! closed as soon as they are accepted) and restore: a network partition between one client
//! and a server, the server itself untouched. TLS passes through unchanged.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

pub struct TcpProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    /// Bumped on every cut; each connection ends when it sees a new value.
    generation: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free 127.0.0.1 port and forwards each connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let (generation, _) = watch::channel(0);
        let task = tokio::spawn({
            let cut = Arc::clone(&cut);
            let accepted = Arc::clone(&accepted);
            let generation = generation.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        // Closed at once: the client sees its connection end, as through a
                        // partition it would see it time out, only sooner.
                        drop(client);
                        continue;
                    }
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let mut changed = generation.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(upstream).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = changed.changed() => {}
                        }
                    });
                }
            }
        });
        Self {
            addr,
            cut,
            generation,
            accepted,
            task,
        }
    }

    /// `https://127.0.0.1:PORT`, for a kubeconfig.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Drops every open connection and refuses new ones until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Connections forwarded so far.
    pub fn connections(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}
