// Package metainfo reads, checks, writes and creates BitTorrent metainfo
// (.torrent) files: single-file and multi-file torrents (BEP 3 §metainfo
// files), tracker tiers (BEP 12 announce-list), the private flag (BEP 27),
// and magnet links (BEP 9 §magnet URI format).
//
// Load, LoadFile and Parse decode a .torrent into a MetaInfo and check it:
// every problem is a *FieldError that names the field, such as
// "metainfo: info.pieces: length 41 is not a multiple of 20", and file
// paths that could lead outside the torrent's directory (empty, ".", "..",
// or containing "/" or NUL) are refused. The info dict is kept as read in
// MetaInfo.InfoBytes, and InfoHash hashes those bytes, so a torrent whose
// dict keys are out of order keeps its identity. Write writes a MetaInfo
// back.
//
// Info has helpers for pieces (NumPieces, PieceHash, PieceSize,
// CheckPiece), and Layout maps pieces and byte ranges to the files that
// hold them. Create makes a torrent of a file or directory, hashing pieces
// in parallel. ParseMagnet and Magnet.String read and write magnet links.
//
// The package does no network I/O; its only storage access is reading the
// files that LoadFile and Create are given.
package metainfo
