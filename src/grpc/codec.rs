//! The protobuf codec of the public gRPC services and their Rust clients: prost's, with a
//! 1 KiB starting buffer instead of tonic's default 8 KiB.
//!
//! tonic allocates the encode buffer eagerly for every call and keeps it for a stream's
//! whole life, so for an idle watch stream those 8 KiB were most of its memory: measured
//! with 10,000 idle KV watch streams (dev build, `rostractl bench compare`), 12.2 KB
//! per stream with the default and 7.6 KB with this. Watch messages are small; a larger
//! message (a snapshot chunk, a big value) grows the buffer as it is written.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Bytes each call's encode and decode buffers start with.
const START_BUFFER: usize = 1024;
/// tonic's own default: how much one poll encodes before yielding to the transport.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// `ProstCodec` with [`START_BUFFER`] (named by `build.rs` as the generated code's codec).
#[derive(Debug, Clone, Copy)]
pub struct SmallBufferCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        SmallBufferCodec(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(START_BUFFER, YIELD_THRESHOLD)
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
