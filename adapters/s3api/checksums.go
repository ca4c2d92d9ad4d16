package s3api

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"strings"
)

// crc64NVME is CRC-64/NVME (reflected polynomial; Go's crc64 applies the
// standard all-ones init and final xor), what newer AWS SDKs default to.
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

// checksumAlgorithms are the x-amz-checksum-* headers S3 verifies.
var checksumAlgorithms = map[string]func() hash.Hash{
	"crc32":     func() hash.Hash { return crc32.NewIEEE() },
	"crc32c":    func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) },
	"crc64nvme": func() hash.Hash { return crc64.New(crc64NVME) },
	"sha1":      sha1.New,
	"sha256":    sha256.New,
}

// digests computes, while a body is staged (adapters.Upload.Also), its MD5
// (the ETag) and every digest the client declared, and compares them once
// the body is complete.
type digests struct {
	md5      hash.Hash
	want     map[string]string // header name -> base64 value ("" until a trailer sends it)
	hashes   map[string]hash.Hash
	trailers map[string]bool // declared in x-amz-trailer, value comes after the body
	w        io.Writer
}

// newDigests reads Content-MD5, x-amz-checksum-* and x-amz-trailer.
func newDigests(h http.Header) (*digests, *apiError) {
	d := &digests{md5: md5.New(), want: map[string]string{}, hashes: map[string]hash.Hash{}, trailers: map[string]bool{}}
	if v := h.Get("Content-Md5"); v != "" {
		if b, err := base64.StdEncoding.DecodeString(v); err != nil || len(b) != md5.Size {
			return nil, errInvalidDigest.with("Content-MD5 %q is not a base64 MD5", v)
		}
		d.want["content-md5"] = v
	}
	for _, t := range strings.Split(h.Get("X-Amz-Trailer"), ",") {
		if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
			d.trailers[t] = true
		}
	}
	writers := []io.Writer{d.md5}
	for alg, mk := range checksumAlgorithms {
		name := "x-amz-checksum-" + alg
		v := h.Get(name)
		if v == "" && !d.trailers[name] {
			continue
		}
		d.want[name] = v
		d.hashes[name] = mk()
		writers = append(writers, d.hashes[name])
	}
	d.w = io.MultiWriter(writers...)
	return d, nil
}

func (d *digests) Write(p []byte) (int, error) { return d.w.Write(p) }

// check compares every declared digest with the body's; trailer values
// come from the aws-chunked trailer.
func (d *digests) check(trailer http.Header) *apiError {
	sum := d.md5.Sum(nil)
	if v, ok := d.want["content-md5"]; ok && v != base64.StdEncoding.EncodeToString(sum) {
		return errBadDigest.with("the Content-MD5 you specified did not match what we received")
	}
	for name, h := range d.hashes {
		v := d.want[name]
		if d.trailers[name] && trailer != nil {
			v = trailer.Get(name)
		}
		if v == "" {
			return errInvalidRequest.with("%s was declared as a trailer but not sent", name)
		}
		if got := base64.StdEncoding.EncodeToString(h.Sum(nil)); got != v {
			return errBadDigest.with("the %s you specified did not match the calculated checksum", name)
		}
	}
	return nil
}

// md5Sum is the body's MD5 (valid after the body was written).
func (d *digests) md5Sum() []byte { return d.md5.Sum(nil) }
