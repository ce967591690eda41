//! What a rule's expressions leave in the nf_tables data registers, as far
//! as the readers of kube-proxy's rules follow them.

use super::{Data, Expr};

/// Where a register's bytes start, in 4-byte slots (`NFT_REG_1` is slots
/// 0-3, `NFT_REG32_00` is slot 0, `NFT_REG32_15` slot 15); `None` for the
/// verdict register and numbers that name no register.
pub fn register_slot(register: u32) -> Option<usize> {
    match register {
        1..=4 => Some((register as usize - 1) * 4),
        8..=23 => Some(register as usize - 8),
        _ => None,
    }
}

/// Expressions that write no data register: a rule may have them between
/// a register's write and its use without changing what the register
/// holds. Every other expression not followed here (`ct`, `numgen`, `hash`,
/// `fib`, ...) may, so the registers are forgotten after it.
pub const REGISTER_NEUTRAL: [&str; 16] = [
    "counter",
    "limit",
    "log",
    "quota",
    "notrack",
    "dynset",
    "objref",
    "reject",
    "masq",
    "redir",
    "queue",
    "dup",
    "fwd",
    "connlimit",
    "last",
    "synproxy",
];

/// How many 4-byte slots the data registers have.
const SLOTS: usize = 16;

/// What the rule put into a register, as far as the reader follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Constant bytes (`immediate`).
    Const(Vec<u8>),
    /// A packet field (`payload load`, `meta load`), optionally masked.
    Field {
        /// Which field.
        field: Field,
        /// Bytes loaded.
        len: usize,
        /// The `bitwise` mask applied since (xor 0), if any.
        mask: Option<Vec<u8>>,
    },
    /// The data a map lookup found (one per element of the map).
    MapData {
        /// The map.
        set: String,
    },
}

/// A packet field an expression loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `payload` at a header base and byte offset.
    Payload {
        /// `NFT_PAYLOAD_*_HEADER`.
        base: u32,
        /// Byte offset.
        offset: u32,
    },
    /// `meta` key.
    Meta(u32),
}

/// The data registers of one rule's evaluation: which value sits where.
/// Writing a value clobbers every value it overlaps.
#[derive(Debug, Clone, Default)]
pub struct Registers {
    held: Vec<(usize, usize, Value)>,
}

impl Registers {
    /// `value`, `len` bytes long, written to `register`.
    pub fn write(&mut self, register: u32, len: usize, value: Value) {
        let Some(start) = register_slot(register) else { return };
        let end = (start + len.div_ceil(4).max(1)).min(SLOTS);
        self.held.retain(|(s, l, _)| *s + l.div_ceil(4).max(1) <= start || *s >= end);
        self.held.push((start, len, value));
    }

    /// The value covering `register`, and the byte offset of the register
    /// inside it.
    pub fn read(&self, register: u32) -> Option<(&Value, usize)> {
        let slot = register_slot(register)?;
        self.held.iter().find_map(|(start, len, value)| {
            (slot >= *start && slot < start + len.div_ceil(4).max(1))
                .then(|| (value, (slot - start) * 4))
        })
    }

    /// Forgets every value (an expression that may write any register).
    pub fn forget(&mut self) {
        self.held.clear();
    }

    /// Forgets `register`'s value (an expression wrote something not
    /// followed).
    pub fn clobber(&mut self, register: u32, len: usize) {
        let Some(start) = register_slot(register) else { return };
        let end = (start + len.div_ceil(4).max(1)).min(SLOTS);
        self.held.retain(|(s, l, _)| *s + l.div_ceil(4).max(1) <= start || *s >= end);
    }
}

/// `NFT_META_IIFNAME`, `NFT_META_OIFNAME`: 16-byte interface names.
const NFT_META_IFNAMES: [u32; 2] = [6, 7];

/// Follows what `expr` writes into the data registers (after whatever it
/// reads has been looked at). `map_data_len` gives the data length of a
/// map a `lookup` writes from.
pub fn follow(registers: &mut Registers, expr: &Expr, map_data_len: &dyn Fn(&str) -> usize) {
    match expr {
        Expr::Payload { base, offset, len, dreg } => registers.write(
            *dreg,
            *len as usize,
            Value::Field {
                field: Field::Payload { base: *base, offset: *offset },
                len: *len as usize,
                mask: None,
            },
        ),
        Expr::Meta { key, dreg } => {
            let len = if NFT_META_IFNAMES.contains(key) { 16 } else { 4 };
            registers.write(*dreg, len, Value::Field { field: Field::Meta(*key), len, mask: None })
        }
        Expr::Bitwise { sreg, dreg, mask, xor } => {
            let masked = match registers.read(*sreg) {
                Some((Value::Field { field, len, mask: None }, 0))
                    if xor.iter().all(|b| *b == 0) =>
                {
                    Some(Value::Field { field: *field, len: *len, mask: Some(mask.clone()) })
                }
                _ => None,
            };
            match masked {
                Some(value) => registers.write(*dreg, mask.len(), value),
                None => registers.clobber(*dreg, mask.len()),
            }
        }
        Expr::Immediate { dreg, data: Data::Value(bytes) } => {
            registers.write(*dreg, bytes.len(), Value::Const(bytes.clone()))
        }
        Expr::Lookup { set, dreg: Some(dreg), .. } if *dreg != 0 => {
            registers.write(*dreg, map_data_len(set), Value::MapData { set: set.clone() })
        }
        Expr::Cmp { .. }
        | Expr::Immediate { .. }
        | Expr::Lookup { .. }
        | Expr::Nat { .. }
        | Expr::Match { .. }
        | Expr::Target { .. } => {}
        Expr::Other(name) if REGISTER_NEUTRAL.contains(&name.as_str()) => {}
        Expr::Other(_) => registers.forget(),
    }
}
