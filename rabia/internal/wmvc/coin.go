package wmvc

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// MinSecretLen is the shortest cluster secret NewEngine accepts for the common
// coin.
const MinSecretLen = 16

// coin is the common coin: coin(slot, phase) is one bit of
// HMAC-SHA256(secret, slot || phase) with both numbers big-endian (8 and 4
// bytes). Every replica holding the same secret computes the same bit, and
// without the secret the bit cannot be predicted, so a scheduler that does not
// know the secret cannot steer message order against the coin (Ben-Or style
// termination needs exactly that). It is deterministic, so a replay of the
// same inputs yields the same run.
type coin struct {
	mac hash.Hash
	buf [12]byte
	sum []byte
}

func newCoin(secret []byte) *coin {
	return &coin{mac: hmac.New(sha256.New, secret), sum: make([]byte, 0, sha256.Size)}
}

// flip returns the coin's bit (0 or 1) for slot and phase.
func (c *coin) flip(slot uint64, phase uint32) uint8 {
	binary.BigEndian.PutUint64(c.buf[0:8], slot)
	binary.BigEndian.PutUint32(c.buf[8:12], phase)
	c.mac.Reset()
	c.mac.Write(c.buf[:])
	c.sum = c.mac.Sum(c.sum[:0])
	return c.sum[0] & 1
}

// Coin returns coin(slot, phase) for the given cluster secret, exactly as the
// engine computes it. It exists for tests and tooling; the engine keeps its
// own keyed instance.
func Coin(secret []byte, slot uint64, phase uint32) uint8 {
	return newCoin(secret).flip(slot, phase)
}
