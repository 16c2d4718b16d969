package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"
)

// The handover's encoding (format 3): a small self-describing binary form
// of the handover struct, written by the old image and read by the new
// one, which may be another version of overseer. Like encoding/gob (format
// 2), it matches struct fields by name: a field the reader does not know
// is skipped, one the writer did not send stays zero, a field whose kind
// changed is an error; unexported, func and chan fields are not sent, and
// zero fields are left out. Unlike gob it has no type registry built at
// every start of the binary (gob's init cost every `overseer status`
// ~0.25 ms and 366 allocations), and it keeps nil and empty apart.
//
// Each value is a tag byte, then:
//
//	tagInt    zig-zag varint      tagUint  uvarint     tagFloat  8 bytes
//	tagFalse, tagTrue, tagNil     (nothing more)
//	tagString, tagBytes           uvarint length, the bytes
//	tagTime   uvarint length, time.Time's MarshalBinary
//	tagList   uvarint count, the elements
//	tagMap    uvarint count, key and value each
//	tagStruct uvarint type number; for a number not seen before (the
//	          next one), the type's field names (uvarint count, each a
//	          uvarint length and the name); then the uvarint count of
//	          fields sent, and for each its uvarint place among the
//	          type's names, and its value
//
// The blob begins with handoverMagic and the format (uvarint).
const (
	tagInt byte = iota + 1
	tagUint
	tagFloat
	tagFalse
	tagTrue
	tagNil
	tagString
	tagBytes
	tagTime
	tagList
	tagMap
	tagStruct
)

const handoverMagic = "overseer-handover\n"

var timeType = reflect.TypeFor[time.Time]()

// encodeHandover encodes v (a pointer to a struct, or a struct) after the
// magic and format.
func encodeHandover(format int, v any) ([]byte, error) {
	e := &encoder{b: append(make([]byte, 0, 64<<10), handoverMagic...), fields: map[reflect.Type]*encType{}}
	e.b = binary.AppendUvarint(e.b, uint64(format))
	if err := e.value(reflect.ValueOf(v)); err != nil {
		return nil, err
	}
	return e.b, nil
}

// decodeHandover checks the magic and the format, then decodes into v, a
// pointer to a struct.
func decodeHandover(b []byte, format int, v any) error {
	rest, ok := cutPrefix(b, handoverMagic)
	if !ok {
		return errors.New("not a handover of format 3 or later")
	}
	f, n := binary.Uvarint(rest)
	if n <= 0 {
		return errors.New("truncated")
	}
	if f != uint64(format) {
		return fmt.Errorf("format %d, not %d", f, format)
	}
	d := &decoder{b: rest[n:], local: map[localKey][]int{}}
	if err := d.value(reflect.ValueOf(v).Elem(), "handover"); err != nil {
		return err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d bytes after the end", len(d.b))
	}
	return nil
}

func cutPrefix(b []byte, p string) ([]byte, bool) {
	if len(b) < len(p) || string(b[:len(p)]) != p {
		return b, false
	}
	return b[len(p):], true
}

// codecField is a struct field that is sent: exported, not a func or chan.
type codecField struct {
	index int
	name  string
}

func sentFields(t reflect.Type) []codecField {
	var fs []codecField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || f.Type.Kind() == reflect.Func || f.Type.Kind() == reflect.Chan {
			continue
		}
		fs = append(fs, codecField{i, f.Name})
	}
	return fs
}

type encoder struct {
	b      []byte
	fields map[reflect.Type]*encType
}

// encType is a struct type the encoder has sent: its number and fields.
type encType struct {
	id     int
	fields []codecField
}

func (e *encoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) value(v reflect.Value) error {
	if v.Type() == timeType {
		t, err := v.Interface().(time.Time).MarshalBinary()
		if err != nil {
			return err
		}
		e.b = append(e.b, tagTime)
		e.str(string(t))
		return nil
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.b = append(e.b, tagInt)
		e.b = binary.AppendVarint(e.b, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.b = append(e.b, tagUint)
		e.b = binary.AppendUvarint(e.b, v.Uint())
	case reflect.Float32, reflect.Float64:
		e.b = append(e.b, tagFloat)
		e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v.Float()))
	case reflect.Bool:
		if v.Bool() {
			e.b = append(e.b, tagTrue)
		} else {
			e.b = append(e.b, tagFalse)
		}
	case reflect.String:
		e.b = append(e.b, tagString)
		e.str(v.String())
	case reflect.Pointer:
		if v.IsNil() {
			e.b = append(e.b, tagNil)
			return nil
		}
		return e.value(v.Elem())
	case reflect.Slice:
		if v.IsNil() {
			e.b = append(e.b, tagNil)
			return nil
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			e.b = append(e.b, tagBytes)
			e.str(string(v.Bytes()))
			return nil
		}
		fallthrough
	case reflect.Array:
		e.b = append(e.b, tagList)
		e.b = binary.AppendUvarint(e.b, uint64(v.Len()))
		for i := range v.Len() {
			if err := e.value(v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if v.IsNil() {
			e.b = append(e.b, tagNil)
			return nil
		}
		e.b = append(e.b, tagMap)
		e.b = binary.AppendUvarint(e.b, uint64(v.Len()))
		for it := v.MapRange(); it.Next(); {
			if err := e.value(it.Key()); err != nil {
				return err
			}
			if err := e.value(it.Value()); err != nil {
				return err
			}
		}
	case reflect.Struct:
		e.b = append(e.b, tagStruct)
		et, ok := e.fields[v.Type()]
		if !ok {
			et = &encType{id: len(e.fields), fields: sentFields(v.Type())}
			e.fields[v.Type()] = et
			e.b = binary.AppendUvarint(e.b, uint64(et.id))
			e.b = binary.AppendUvarint(e.b, uint64(len(et.fields)))
			for _, f := range et.fields {
				e.str(f.name)
			}
		} else {
			e.b = binary.AppendUvarint(e.b, uint64(et.id))
		}
		n := 0
		for _, f := range et.fields {
			if !v.Field(f.index).IsZero() {
				n++
			}
		}
		e.b = binary.AppendUvarint(e.b, uint64(n))
		for i, f := range et.fields {
			fv := v.Field(f.index)
			if fv.IsZero() {
				continue
			}
			e.b = binary.AppendUvarint(e.b, uint64(i))
			if err := e.value(fv); err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
		}
	case reflect.Interface:
		if v.IsNil() {
			e.b = append(e.b, tagNil)
			return nil
		}
		return fmt.Errorf("cannot encode an interface holding %s", v.Elem().Type())
	default:
		return fmt.Errorf("cannot encode a %s", v.Type())
	}
	return nil
}

type decoder struct {
	b     []byte
	types [][]string // the field names of each struct type sent, by number
	// local maps a type sent and the Go type it is decoded into to the
	// index of each of its fields there (-1: none, skipped).
	local map[localKey][]int
}

type localKey struct {
	id int
	t  reflect.Type
}

var errTruncated = errors.New("truncated")

func (d *decoder) uvarint() (uint64, error) {
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		return 0, errTruncated
	}
	d.b = d.b[n:]
	return x, nil
}

// bytes returns the next length-prefixed bytes, not copied.
func (d *decoder) bytes() ([]byte, error) {
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(d.b)) {
		return nil, errTruncated
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s, nil
}

// count reads a list's, map's or struct's count, bounded by what is left
// (each item takes a byte at least).
func (d *decoder) count() (int, error) {
	n, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(len(d.b)) {
		return 0, errTruncated
	}
	return int(n), nil
}

// value decodes the next value into v (settable); at names it in errors.
func (d *decoder) value(v reflect.Value, at string) error {
	if len(d.b) == 0 {
		return errTruncated
	}
	tag := d.b[0]
	if v.Kind() == reflect.Pointer && tag != tagNil {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return d.value(v.Elem(), at)
	}
	d.b = d.b[1:]
	mismatch := func() error {
		return fmt.Errorf("%s: a %s cannot hold the value sent (tag %d)", at, v.Type(), tag)
	}
	if v.Type() == timeType {
		if tag != tagTime {
			return mismatch()
		}
		b, err := d.bytes()
		if err != nil {
			return err
		}
		var t time.Time
		if err := t.UnmarshalBinary(b); err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		v.Set(reflect.ValueOf(t))
		return nil
	}
	switch tag {
	case tagNil:
		switch v.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			v.SetZero()
			return nil
		}
	case tagInt:
		x, n := binary.Varint(d.b)
		if n <= 0 {
			return errTruncated
		}
		d.b = d.b[n:]
		switch v.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			if v.OverflowInt(x) {
				return fmt.Errorf("%s: %d overflows a %s", at, x, v.Type())
			}
			v.SetInt(x)
			return nil
		}
	case tagUint:
		x, err := d.uvarint()
		if err != nil {
			return err
		}
		switch v.Kind() {
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			if v.OverflowUint(x) {
				return fmt.Errorf("%s: %d overflows a %s", at, x, v.Type())
			}
			v.SetUint(x)
			return nil
		}
	case tagFloat:
		if len(d.b) < 8 {
			return errTruncated
		}
		x := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
		d.b = d.b[8:]
		if k := v.Kind(); k == reflect.Float32 || k == reflect.Float64 {
			v.SetFloat(x)
			return nil
		}
	case tagFalse, tagTrue:
		if v.Kind() == reflect.Bool {
			v.SetBool(tag == tagTrue)
			return nil
		}
	case tagString:
		b, err := d.bytes()
		if err != nil {
			return err
		}
		if v.Kind() == reflect.String {
			v.SetString(string(b))
			return nil
		}
	case tagBytes:
		b, err := d.bytes()
		if err != nil {
			return err
		}
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes(append(make([]byte, 0, len(b)), b...))
			return nil
		}
	case tagList:
		n, err := d.count()
		if err != nil {
			return err
		}
		switch v.Kind() {
		case reflect.Slice:
			v.Set(reflect.MakeSlice(v.Type(), n, n))
		case reflect.Array:
			if n != v.Len() {
				return fmt.Errorf("%s: %d elements sent for a %s", at, n, v.Type())
			}
		default:
			return mismatch()
		}
		for i := range n {
			if err := d.value(v.Index(i), at); err != nil {
				return err
			}
		}
		return nil
	case tagMap:
		n, err := d.count()
		if err != nil {
			return err
		}
		if v.Kind() != reflect.Map {
			return mismatch()
		}
		m := reflect.MakeMapWithSize(v.Type(), n)
		for range n {
			k := reflect.New(v.Type().Key()).Elem()
			if err := d.value(k, at); err != nil {
				return err
			}
			e := reflect.New(v.Type().Elem()).Elem()
			if err := d.value(e, at); err != nil {
				return err
			}
			m.SetMapIndex(k, e)
		}
		v.Set(m)
		return nil
	case tagStruct:
		id, err := d.structType()
		if err != nil {
			return err
		}
		n, err := d.count()
		if err != nil {
			return err
		}
		if v.Kind() != reflect.Struct {
			return mismatch()
		}
		names := d.types[id]
		idx, ok := d.local[localKey{id, v.Type()}]
		if !ok {
			byName := map[string]int{}
			for _, f := range sentFields(v.Type()) {
				byName[f.name] = f.index
			}
			idx = make([]int, len(names))
			for i, name := range names {
				if j, ok := byName[name]; ok {
					idx[i] = j
				} else {
					idx[i] = -1
				}
			}
			d.local[localKey{id, v.Type()}] = idx
		}
		for range n {
			i, err := d.uvarint()
			if err != nil {
				return err
			}
			if i >= uint64(len(idx)) {
				return fmt.Errorf("%s: field %d of %d", at, i, len(idx))
			}
			if idx[i] < 0 {
				if err := d.skip(); err != nil { // a field this version does not have
					return err
				}
				continue
			}
			if err := d.value(v.Field(idx[i]), names[i]); err != nil {
				return fmt.Errorf("%s.%w", at, err)
			}
		}
		return nil
	default:
		return fmt.Errorf("%s: unknown tag %d", at, tag)
	}
	return mismatch()
}

// structType reads a struct's type number, and its field names when it is
// a new one.
func (d *decoder) structType() (int, error) {
	id, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	switch {
	case id < uint64(len(d.types)):
		return int(id), nil
	case id > uint64(len(d.types)):
		return 0, fmt.Errorf("struct type %d before %d", id, len(d.types))
	}
	n, err := d.count()
	if err != nil {
		return 0, err
	}
	names := make([]string, n)
	for i := range names {
		b, err := d.bytes()
		if err != nil {
			return 0, err
		}
		names[i] = string(b)
	}
	d.types = append(d.types, names)
	return int(id), nil
}

// skip passes over the next value.
func (d *decoder) skip() error {
	if len(d.b) == 0 {
		return errTruncated
	}
	tag := d.b[0]
	d.b = d.b[1:]
	switch tag {
	case tagInt, tagUint:
		_, err := d.uvarint() // a varint's length does not depend on its sign
		return err
	case tagFloat:
		if len(d.b) < 8 {
			return errTruncated
		}
		d.b = d.b[8:]
	case tagFalse, tagTrue, tagNil:
	case tagString, tagBytes, tagTime:
		_, err := d.bytes()
		return err
	case tagList, tagMap:
		n, err := d.count()
		if err != nil {
			return err
		}
		if tag == tagMap {
			n *= 2
		}
		for range n {
			if err := d.skip(); err != nil {
				return err
			}
		}
	case tagStruct:
		if _, err := d.structType(); err != nil {
			return err
		}
		n, err := d.count()
		if err != nil {
			return err
		}
		for range n {
			if _, err := d.uvarint(); err != nil {
				return err
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown tag %d", tag)
	}
	return nil
}
