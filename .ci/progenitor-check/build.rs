//! Generates the client from the document at `$OPENAPI_30_JSON` (the
//! broker's 3.0 rendering, fetched by .ci/openapi-clients-check) into
//! `$OUT_DIR/codegen.rs`, as progenitor's README shows for build.rs use.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=OPENAPI_30_JSON");
    let Ok(src) = std::env::var("OPENAPI_30_JSON") else {
        panic!("OPENAPI_30_JSON names no document: run .ci/openapi-clients-check");
    };
    println!("cargo:rerun-if-changed={src}");
    let file = std::fs::File::open(&src).unwrap_or_else(|e| panic!("{src}: {e}"));
    let spec =
        serde_json::from_reader(file).unwrap_or_else(|e| panic!("{src}: not OpenAPI 3.0: {e}"));
    let mut generator = progenitor::Generator::default();
    let tokens = generator
        .generate_tokens(&spec)
        .unwrap_or_else(|e| panic!("{src}: progenitor: {e}"));
    let ast = syn::parse2(tokens).expect("progenitor writes Rust");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("codegen.rs");
    std::fs::write(out, prettyplease::unparse(&ast)).expect("OUT_DIR is writable");
}
