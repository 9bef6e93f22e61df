//! A minimal HTTP/1.1 client on one kept-alive loopback connection (std only, as the rest of
//! xtask): what a script or SDK calling the API does, and the shape of Celery's persistent Redis
//! connection, so the API round trip measures the server, not connection set-up.

use std::io::{BufReader, Write as _};
use std::net::TcpStream;
use std::time::Duration;

/// Longer than the server's longest long poll (30 s).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Connection {
    reader: BufReader<TcpStream>,
    host: String,
    token: String,
}

impl Connection {
    /// Connects to `base_url` (`http://127.0.0.1:PORT`) and sends `token` as the bearer on
    /// every request.
    pub fn open(base_url: &str, token: &str) -> Result<Connection, String> {
        let host = base_url
            .strip_prefix("http://")
            .ok_or_else(|| format!("not an http:// URL: {base_url}"))?
            .trim_end_matches('/')
            .to_owned();
        let stream =
            TcpStream::connect(&host).map_err(|e| format!("cannot connect to {host}: {e}"))?;
        // Small requests: without this, Nagle's algorithm would hold each one back for the
        // previous one's ACK.
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_read_timeout(Some(READ_TIMEOUT)))
            .map_err(|e| format!("cannot set up the connection to {host}: {e}"))?;
        Ok(Connection {
            reader: BufReader::new(stream),
            host,
            token: token.to_owned(),
        })
    }

    /// Sends one request and reads its whole answer: the status code and the body.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        json_body: Option<&str>,
    ) -> Result<(u16, Vec<u8>), String> {
        let body = json_body.unwrap_or("");
        let content_type = if json_body.is_some() {
            "Content-Type: application/json\r\n"
        } else {
            ""
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n{content_type}\
             Content-Length: {}\r\n\r\n",
            self.host,
            self.token,
            body.len()
        );
        let stream = self.reader.get_mut();
        stream
            .write_all(format!("{head}{body}").as_bytes())
            .map_err(|e| format!("{method} {path}: cannot send: {e}"))?;
        read_response(&mut self.reader).map_err(|e| format!("{method} {path}: {e}"))
    }
}

/// Reads a status line, headers and a body framed by Content-Length or chunked encoding.
fn read_response(reader: &mut impl std::io::BufRead) -> Result<(u16, Vec<u8>), String> {
    let status_line = read_line(reader)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("malformed status line {status_line:?}"))?;
    let mut content_length = None;
    let mut chunked = false;
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed header {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let body = if chunked {
        read_chunked(reader)?
    } else {
        let length = content_length.ok_or("an answer with neither length nor chunks")?;
        read_exact(reader, length)?
    };
    Ok((status, body))
}

fn read_chunked(reader: &mut impl std::io::BufRead) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(reader)?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_line:?}"))?;
        if size == 0 {
            // Trailers (none expected) end with an empty line.
            while !read_line(reader)?.is_empty() {}
            return Ok(body);
        }
        body.extend(read_exact(reader, size)?);
        if !read_line(reader)?.is_empty() {
            return Err("a chunk not followed by CRLF".into());
        }
    }
}

fn read_line(reader: &mut impl std::io::BufRead) -> Result<String, String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => Err("the server closed the connection".into()),
        Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_owned()),
        Err(e) => Err(format!("cannot read the answer: {e}")),
    }
}

fn read_exact(reader: &mut impl std::io::Read, length: usize) -> Result<Vec<u8>, String> {
    let mut buffer = vec![0; length];
    reader
        .read_exact(&mut buffer)
        .map_err(|e| format!("cannot read the answer's body: {e}"))?;
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::read_response;

    #[test]
    fn content_length_then_chunked_on_one_connection() {
        let wire = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
                     content-length: 14\r\n\r\n{\"batch_id\":7}\
                     HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                     4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
        let mut reader = &wire[..];
        assert_eq!(
            read_response(&mut reader),
            Ok((201, b"{\"batch_id\":7}".to_vec()))
        );
        assert_eq!(read_response(&mut reader), Ok((200, b"{\"a\":1}".to_vec())));
        assert!(read_response(&mut reader).is_err(), "nothing left to read");
    }
}
