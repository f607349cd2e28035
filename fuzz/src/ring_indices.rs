//! The shared-ring index logic, either side writing any index.
//!
//! The shared-ring index logic ([`xen_abi::ring`]: `BackRing`, `FrontRing`): the input picks
//! a ring size and a starting index (wrap-around included), then a script of steps by a
//! well-behaved frontend and backend and by either side writing indices of its choosing.
//!
//! Asserts: whatever the other side writes, a backend never has more requests taken and not
//! answered than the ring has slots, a frontend never takes more responses than it has
//! requests outstanding, a refused index leaves the private state untouched, responses are
//! only produced for taken requests; while both sides behave, no step fails and every
//! request produced is taken and answered in order.

use crate::input::Input;
use xen_abi::ring::{BackRing, FrontRing, LocalIndices, RingError, SharedRingIndices};

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let nr = 1u32 << (input.u8() % 9);
    let start = input.u32();
    let shared = LocalIndices::new();
    shared.store_req_prod(start);
    shared.store_rsp_prod(start);
    let mut back = BackRing::attach(nr, start).expect("power of two");
    let mut front = FrontRing::attach(nr, start).expect("power of two");
    let mut honest = true;
    // What a well-behaved pair has done: produced, taken, answered, consumed.
    let (mut produced, mut taken, mut answered, mut consumed) = (0u64, 0u64, 0u64, 0u64);

    while !input.is_empty() {
        match input.u8() % 9 {
            0 => {
                for _ in 0..=(input.u8() % 4) {
                    match front.next_request_slot() {
                        Ok(idx) => {
                            assert_eq!(idx, start.wrapping_add(produced as u32));
                            produced += 1;
                        }
                        Err(RingError::Full) => assert!(front.is_full()),
                        Err(e) => panic!("{e}"),
                    }
                }
                let _ = front.push_requests(&shared);
            }
            1 => loop {
                let before = back;
                match back.next_request(&shared) {
                    Ok(Some(idx)) => {
                        assert_eq!(idx, before.req_cons());
                        taken += 1;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        assert!(!honest, "a well-behaved frontend: {e}");
                        assert_eq!(back, before, "a refused index changes nothing");
                        break;
                    }
                }
            },
            2 => {
                let before = back;
                match back.next_response_slot() {
                    Ok(idx) => {
                        assert_eq!(idx, before.rsp_prod_pvt());
                        answered += 1;
                    }
                    Err(RingError::NoOutstandingRequest) => {
                        assert_eq!(before.in_flight(), 0);
                        assert_eq!(back, before);
                    }
                    Err(e) => panic!("{e}"),
                }
                let _ = back.push_responses(&shared);
            }
            3 => loop {
                let before = front;
                match front.next_response(&shared) {
                    Ok(Some(idx)) => {
                        assert_eq!(idx, before.rsp_cons());
                        consumed += 1;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        assert!(!honest, "a well-behaved backend: {e}");
                        assert_eq!(front, before, "a refused index changes nothing");
                        break;
                    }
                }
            },
            4 => {
                let before = back;
                if back.final_check_for_requests(&shared).is_err() {
                    assert!(!honest);
                }
                assert_eq!(back, before);
            }
            5 => {
                let before = front;
                if front.final_check_for_responses(&shared).is_err() {
                    assert!(!honest);
                }
                assert_eq!(front, before);
            }
            6 => {
                shared.store_req_prod(input.u32());
                honest = false;
            }
            7 => {
                shared.store_rsp_prod(input.u32());
                honest = false;
            }
            _ => {
                // Event indices are advisory: any value only changes who notifies.
                shared.store_req_event(input.u32());
                shared.store_rsp_event(input.u32());
            }
        }
        assert!(
            back.in_flight() <= nr,
            "backend holds at most a ring of requests"
        );
        assert!(
            front.free_requests() <= nr,
            "frontend's responses never pass its requests"
        );
        if honest {
            assert!(consumed <= answered && answered <= taken && taken <= produced);
            assert_eq!(back.req_cons(), start.wrapping_add(taken as u32));
            assert_eq!(front.rsp_cons(), start.wrapping_add(consumed as u32));
        }
    }
}
