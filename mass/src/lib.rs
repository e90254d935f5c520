//! MASS, the Mini-App for Stream Sources: emulates a scientific instrument by pushing messages into Kafka.
//!
//! Starting point. The MASS issue fills this crate with the sources (cluster points, static, APS HDF5 template,
//! synthetic bytes) behind one trait, open-loop rate control, and the producer with delivery-latency metrics.
//! The message envelope both mini-apps agree on lives in `pilot-core`; broker connection details come from a
//! [`pilot_core::PilotDetails`].
