//! The control protocol's requests, read as the control server reads a line.

use vswitch::control::Request;

/// A line as the control server reads it (JSON, an object with a `cmd` string, then a
/// request): never a panic; the typed parser and the server's agree; a request the server
/// takes is written by a client as one line that parses back to it.
pub fn control_request(data: &[u8]) {
    use serde_json::Value;
    let value = serde_json::from_slice::<Value>(data).ok();
    let server = value
        .filter(|v| v.get("cmd").is_some_and(Value::is_string))
        .map(serde_json::from_value::<Request>);
    let direct = serde_json::from_slice::<Request>(data);
    if let (Some(server), Ok(direct)) = (&server, &direct) {
        match server {
            Ok(r) => assert_eq!(r, direct, "the server reads another request"),
            Err(e) => panic!("{direct:?} parses, but the server refuses it: {e}"),
        }
    }
    if let Some(Ok(request)) = server {
        let line = serde_json::to_string(&request).expect("a request serialises");
        assert!(
            !line.contains('\n'),
            "a request line with a newline: {line}"
        );
        let back: Request = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{request:?} written as {line} does not parse: {e}"));
        assert_eq!(back, request, "written as {line}");
        let v: Value = serde_json::from_str(&line).expect("JSON");
        assert!(
            v.get("cmd").is_some_and(Value::is_string),
            "no cmd in {line}"
        );
    }
}
