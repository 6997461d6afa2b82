package consumer

import (
	"reflect"
	"testing"
	"unsafe"
)

// TestAdoptCopiesEveryField: adopt (a follow's snapshot, or an Unfollow's
// empty state) replaces every field of the fold's state. A field added to
// Partition later fails here until adopt copies it, or it is named below as
// one adopt keeps: a partition followed again would otherwise keep stale
// data in it.
func TestAdoptCopiesEveryField(t *testing.T) {
	kept := map[string]bool{
		"mu":     true, // readers hold pointers to the partition and its lock
		"id":     true, // the same partition
		"hwm":    true, // set by the caller
		"notify": true, // closed and replaced: waiters wake and look again
	}
	const topicParts = 7
	p, q := newPartition(3, 10), newPartition(3, 10)
	qv := reflect.ValueOf(q).Elem()
	typ := qv.Type()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if kept[f.Name] {
			continue
		}
		v := reflect.NewAt(f.Type, unsafe.Pointer(qv.Field(i).UnsafeAddr())).Elem()
		switch f.Type.Kind() {
		case reflect.Int, reflect.Int32, reflect.Int64:
			v.SetInt(int64(100 + i))
			if f.Name == "topicParts" {
				v.SetInt(topicParts)
			}
		case reflect.Map:
			v.Set(reflect.MakeMap(f.Type))
		case reflect.Slice:
			v.Set(reflect.MakeSlice(f.Type, 1, 1))
		case reflect.Pointer:
			v.Set(reflect.New(f.Type.Elem()))
		default:
			t.Fatalf("field %s: kind %s: teach this test to set it", f.Name, f.Type.Kind())
		}
	}
	p.adopt(q, topicParts)
	pv := reflect.ValueOf(p).Elem()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if kept[f.Name] {
			continue
		}
		got := reflect.NewAt(f.Type, unsafe.Pointer(pv.Field(i).UnsafeAddr())).Elem()
		want := reflect.NewAt(f.Type, unsafe.Pointer(qv.Field(i).UnsafeAddr())).Elem()
		same := false
		switch f.Type.Kind() {
		case reflect.Int, reflect.Int32, reflect.Int64:
			same = got.Int() == want.Int()
		default:
			same = got.UnsafePointer() == want.UnsafePointer()
		}
		if !same {
			t.Errorf("adopt does not copy Partition.%s", f.Name)
		}
	}
}
