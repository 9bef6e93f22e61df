//! Property tests of the `units` row codec: any unit round-trips, and no byte string, however
//! mangled, makes decoding panic.

use musketeer_protocol::{Base64Bytes, BatchId, ErrorKind, HostId, UnitId, UnitInput};
use proptest::prelude::*;
use serde_json::Value;

use super::unit_row::{decode_unit, encode_unit};
use crate::domain::lifecycle::{
    MAX_REPLICAS, Params, Replica, ReplicaState, Unit, UnitStatus, Validation,
};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Any finite float reads back exactly (serde_json's `float_roundtrip`, set by the
        // protocol crate; without it this found 900873.4990234375 stored as ...376).
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(8, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((".{0,6}", inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn error_kind() -> impl Strategy<Value = ErrorKind> {
    prop::sample::select(vec![
        ErrorKind::FuelExhausted,
        ErrorKind::WallTimeout,
        ErrorKind::MemoryLimit,
        ErrorKind::StackOverflow,
        ErrorKind::OutputTooLarge,
        ErrorKind::RefusedModule,
        ErrorKind::Trap,
        ErrorKind::TaskError,
        ErrorKind::ClientError,
        ErrorKind::BadAssignment,
        ErrorKind::InstantiationFuelExhausted,
        ErrorKind::MemoryFault,
        ErrorKind::Panic,
        ErrorKind::Exit,
        ErrorKind::Other,
    ])
}

fn replica_state() -> impl Strategy<Value = ReplicaState> {
    prop_oneof![
        Just(ReplicaState::Unsent),
        Just(ReplicaState::InProgress),
        Just(ReplicaState::TimedOut),
        Just(ReplicaState::NotNeeded),
        Just(ReplicaState::Lost),
        (
            prop::collection::vec(any::<u8>(), 0..32),
            any::<u64>(),
            any::<u64>(),
            prop::sample::select(vec![
                Validation::Pending,
                Validation::Valid,
                Validation::Invalid
            ]),
        )
            .prop_map(
                |(output, fuel, wall_ms, validation)| ReplicaState::Success {
                    output: Base64Bytes(output),
                    fuel,
                    wall_ms,
                    validation,
                }
            ),
        (error_kind(), ".{0,40}").prop_map(|(kind, message)| ReplicaState::Error { kind, message }),
    ]
}

fn replica() -> impl Strategy<Value = Replica> {
    let any_replica = (
        prop::option::of(any::<u64>()),
        any::<u64>(),
        any::<u64>(),
        ".{0,40}",
        any::<bool>(),
        replica_state(),
    )
        .prop_map(
            |(host, sent_ms, deadline_ms, stderr_tail, late, state)| Replica {
                host: host.map(HostId),
                sent_ms,
                deadline_ms,
                stderr_tail,
                late,
                state,
            },
        );
    // Units whose replicas are all untouched are kept as a count; they must read back too.
    prop_oneof![any_replica, Just(Replica::UNSENT)]
}

fn unit() -> impl Strategy<Value = Unit> {
    let status = prop_oneof![
        Just(UnitStatus::Active),
        any::<u32>().prop_map(|canonical| UnitStatus::Done { canonical }),
        ".{0,40}".prop_map(|reason| UnitStatus::Failed { reason }),
        Just(UnitStatus::Cancelled),
    ];
    // Any settings `Params::resolve` could have let through (a unit keeps them in 8 bytes).
    let count = || 0..=MAX_REPLICAS;
    let params = (
        count(),
        count(),
        count(),
        count(),
        0..=30 * 24 * 60 * 60 * 1000u64,
    )
        .prop_map(
            |(
                min_quorum,
                target_nresults,
                max_error_results,
                max_total_results,
                delay_bound_ms,
            )| {
                Params {
                    min_quorum,
                    target_nresults,
                    max_error_results,
                    max_total_results,
                    delay_bound_ms,
                }
            },
        );
    (
        any::<u64>(),
        any::<u64>(),
        params,
        // Raw inputs (`submit --lines`) of any bytes, as well as JSON ones.
        prop_oneof![
            json_value().prop_map(UnitInput::Json),
            prop::collection::vec(any::<u8>(), 0..64).prop_map(UnitInput::Raw),
        ],
        status,
        prop::collection::vec(replica(), 0..6),
    )
        .prop_map(|(id, batch, params, input, status, replicas)| {
            Unit::from_parts(
                UnitId(id),
                BatchId(batch),
                params,
                input.into(),
                status,
                replicas,
            )
            .expect("settings in range")
        })
}

proptest! {

    #[test]
    fn any_unit_round_trips(unit in unit()) {
        let mut row = Vec::new();
        encode_unit(&unit, &mut row);
        prop_assert_eq!(decode_unit(&row).unwrap(), unit);
    }

    /// A JSON input is kept as text: it reads back as the submitted value, with its key order,
    /// and the row holds exactly what `serde_json` writes for that value.
    #[test]
    fn json_inputs_read_back_as_the_submitted_value(value in json_value()) {
        let params = Params::resolve(&Default::default()).unwrap();
        let unit = Unit::new(UnitId(1), BatchId(1), params, value.clone());
        let mut row = Vec::new();
        encode_unit(&unit, &mut row);
        prop_assert!(row.ends_with(&serde_json::to_vec(&value).unwrap()));
        let back = decode_unit(&row).unwrap();
        prop_assert_eq!(back.input.json_value(), Some(value.clone()));
        prop_assert_eq!(back.input.to_unit_input(), UnitInput::Json(value));
    }

    #[test]
    fn arbitrary_bytes_never_panic(row in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_unit(&row);
    }

    /// A real row with one byte changed or cut short: decoded or refused, never a panic.
    #[test]
    fn mangled_rows_never_panic(
        unit in unit(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let mut row = Vec::new();
        encode_unit(&unit, &mut row);
        let at = at.index(row.len());
        if cut {
            row.truncate(at);
        } else {
            row[at] = byte;
        }
        let _ = decode_unit(&row);
    }
}
