//! Where `hmn top`'s frames come from: a live [`hypomnesis::Monitor`], or a recording played
//! back (`--replay FILE`).
