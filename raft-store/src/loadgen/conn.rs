//! gRPC channels to the endpoints: `conns` HTTP/2 connections, connection `i` to endpoint
//! `i % endpoints`, so load spreads evenly over the members (as etcd's own benchmark tool does).

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::error::LoadgenError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `host:port` gets `http://`; a URL is kept.
pub fn uri(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// Which endpoint connection `i` goes to.
pub fn endpoint_of(i: usize, endpoints: usize) -> usize {
    i % endpoints.max(1)
}

pub async fn connect(endpoints: &[String], conns: usize) -> Result<Vec<Channel>, LoadgenError> {
    let mut out = Vec::with_capacity(conns);
    for i in 0..conns {
        let ep = &endpoints[endpoint_of(i, endpoints.len())];
        let connect_err = |source| LoadgenError::Connect {
            endpoint: ep.clone(),
            source,
        };
        let channel = Endpoint::from_shared(uri(ep))
            .map_err(connect_err)?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(connect_err)?;
        out.push(channel);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_spread() {
        assert_eq!(uri("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(uri("http://h:1"), "http://h:1");
        assert_eq!(
            (0..5).map(|i| endpoint_of(i, 3)).collect::<Vec<_>>(),
            vec![0, 1, 2, 0, 1]
        );
    }
}
