musketeer_task_sdk::task!(|_: &[u8]| Ok::<_, String>(b"fine".to_vec()));
