//! Hand-written components for what a Rust task cannot express: several core instances with a
//! memory each, and a core start function (run while instantiating, before `run`).
//!
//! Each exports the task world's `run: func(input: list<u8>) -> result<list<u8>, string>`.

/// The task's main core module: a bump `realloc`, and a `run` that calls `calls` (each an
/// imported `(func)`), then returns `ok([])` from a fixed return area. `extra` is added to the
/// module body.
fn main_module(imports: &str, calls: &str, extra: &str) -> String {
    format!(
        r#"
  (core module $Main
    {imports}
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $at i32)
      (local.set $at (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
      (global.set $heap (i32.add (local.get $at) (local.get 3)))
      (local.get $at))
    (func (export "run") (param i32 i32) (result i32)
      {calls}
      ;; result<list<u8>, string> at 16: discriminant 0 (ok), then pointer and length.
      (i32.store8 (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (i32.const 0))
      (i32.store (i32.const 24) (i32.const 0))
      (i32.const 16))
    {extra}
  )"#
    )
}

const RUN_EXPORT: &str = r#"
  (func $run (param "input" (list u8)) (result (result (list u8) (error string)))
    (canon lift (core func $main "run") (memory $main "memory")
      (realloc (func $main "realloc"))))
  (export "run" (func $run))
"#;

/// A component with `instances` core instances of a module that, when `run` calls it, grows
/// its own memory by `mib_each` MiB and writes every byte of it (so the pages are resident).
pub fn several_memories(instances: usize, mib_each: u32) -> Vec<u8> {
    let pages = mib_each * 16;
    let mut text = format!(
        r#"(component
  (core module $Bomb
    (memory (export "memory") 1)
    (func (export "fill")
      (if (i32.eq (memory.grow (i32.const {pages})) (i32.const -1)) (then unreachable))
      (memory.fill (i32.const 0) (i32.const 0xa5)
        (i32.mul (memory.size) (i32.const 65536)))))
"#
    );
    let mut imports = String::new();
    let mut calls = String::new();
    let mut with = String::new();
    for i in 0..instances {
        text += &format!("  (core instance $b{i} (instantiate $Bomb))\n");
        imports += &format!("(import \"b{i}\" \"fill\" (func $fill{i}))\n");
        calls += &format!("(call $fill{i})\n");
        with += &format!("(with \"b{i}\" (instance $b{i})) ");
    }
    text += &main_module(&imports, &calls, "");
    text += &format!("\n  (core instance $main (instantiate $Main {with}))\n");
    text += RUN_EXPORT;
    text += ")";
    wat::parse_str(&text).expect("valid component text")
}

/// A component whose core start function loops forever, so instantiation never finishes.
pub fn start_loop() -> Vec<u8> {
    let mut text = String::from("(component\n");
    text += &main_module(
        "",
        "",
        "(func $spin (loop $again (br $again))) (start $spin)",
    );
    text += "\n  (core instance $main (instantiate $Main))\n";
    text += RUN_EXPORT;
    text += ")";
    wat::parse_str(&text).expect("valid component text")
}
