//! The attribute walker of the nfnetlink readers, on netlink-packet-core's
//! [`NlasIterator`].

use netlink_packet_core::{NlaBuffer, NlasIterator, NLA_HEADER_SIZE};

/// The attributes of a netlink message or of a nested attribute: `(type,
/// value)` pairs, `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER` masked off
/// ([`NlaBuffer::kind`]). Stops at the first attribute whose length does
/// not fit (the caller sees fewer attributes, never a panic): for readers
/// that skip what they cannot follow. A reader that must reject a broken
/// attribute uses [`NlasIterator`] itself and keeps its error.
pub fn walk(bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> + Clone {
    NlasIterator::new(bytes).map_while(|nla| nla.ok().and_then(kind_and_value))
}

/// The type and the value of one checked attribute, the value borrowed from
/// the walked bytes (not from the [`NlaBuffer`], which `value()` would tie
/// it to).
fn kind_and_value(nla: NlaBuffer<&[u8]>) -> Option<(u16, &[u8])> {
    let (kind, length) = (nla.kind(), usize::from(nla.length()));
    nla.into_inner().get(NLA_HEADER_SIZE..length).map(|value| (kind, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_aligned_attributes_and_masks_the_flags() {
        #[rustfmt::skip]
        let bytes = [
            5, 0, 0x01, 0x80, b'a', 0, 0, 0, // len 5, type 1 | NLA_F_NESTED, "a", padding
            8, 0, 0x02, 0x40, 0, 0, 0, 7,    // len 8, type 2 | NLA_F_NET_BYTEORDER, be 7
        ];
        let walked: Vec<(u16, &[u8])> = walk(&bytes).collect();
        assert_eq!(walked, [(1, &b"a"[..]), (2, &[0, 0, 0, 7][..])]);
    }

    #[test]
    fn stops_at_the_first_attribute_that_does_not_fit() {
        // A whole attribute, then one claiming 12 bytes where 8 are left,
        // then bytes that are never reached.
        #[rustfmt::skip]
        let bytes = [
            8, 0, 1, 0, 1, 2, 3, 4,
            12, 0, 2, 0, 5, 6, 7, 8,
        ];
        assert_eq!(walk(&bytes).count(), 1);
        // A length below the header size, a header cut short, nothing.
        assert_eq!(walk(&[2, 0, 1, 0, 0, 0, 0, 0]).count(), 0);
        assert_eq!(walk(&[8, 0, 1]).count(), 0);
        assert_eq!(walk(&[]).count(), 0);
    }
}
