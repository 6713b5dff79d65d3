"""FAQ search for the operator desk (callcenter.faq.search): pure ranking."""

from __future__ import annotations

from callcenter.faq.search import FaqDoc, FaqIndex, query_words, search


def doc(key: str, question: str, answer: str = "Liên hệ Sở.", *, field: str = "health",
        position: int = 1, code: str | None = None, keywords: str | None = None) -> FaqDoc:
    return FaqDoc(key=key, code=code, field=field, position=position, question=question,
                  answer=answer, keywords=keywords)


INDEX = FaqIndex.build([
    doc("k1", "Giờ làm việc của bệnh viện tỉnh?", "Từ 7 giờ đến 17 giờ.", position=1),
    doc("k2", "Thủ tục cấp thẻ bảo hiểm y tế?", "Nộp hồ sơ tại bưu điện; bệnh viện không cấp.",
        position=2, code="YT-02"),
    doc("k3", "Tiêm chủng cho trẻ em ở đâu?", "Tại trạm y tế xã.", position=3,
        keywords="vắc xin, tiêm phòng"),
    doc("k4", "Đăng ký xe máy ở đâu?", "Công an huyện.", field="transport", position=1),
    doc("k5", "Đổi giấy phép lái xe?", "Sở Giao thông vận tải.", field="transport", position=2),
])


def keys(found: list[FaqDoc]) -> list[str]:
    return [d.key for d in found]


def test_given_query_without_diacritics_when_searching_then_vietnamese_question_found() -> None:
    assert keys(search(INDEX, "benh vien"))[0] == "k1"
    assert keys(search(INDEX, "BẢO HIỂM")) == ["k2"]
    assert keys(search(INDEX, "dang ky xe"))[0] == "k4"


def test_given_word_in_one_question_and_another_answer_then_question_ranks_first() -> None:
    # "bệnh viện" is in k1's question and only in k2's answer.
    found = keys(search(INDEX, "bệnh viện"))
    assert found == ["k1", "k2"]


def test_given_more_query_words_matched_then_ranked_above_fewer() -> None:
    # k3 matches "tiêm" and "trẻ"; k2/k1 match neither; "xe" alone in k4/k5 is one word.
    assert keys(search(INDEX, "tiêm trẻ xe"))[0] == "k3"


def test_given_keywords_and_code_when_searching_then_found() -> None:
    assert keys(search(INDEX, "vac xin")) == ["k3"]
    assert keys(search(INDEX, "yt-02")) == ["k2"]


def test_given_prefix_being_typed_then_items_already_found() -> None:
    assert keys(search(INDEX, "bảo hi")) == ["k2"]
    assert keys(search(INDEX, "tiem ch")) == ["k3"]


def test_given_empty_query_then_items_in_faq_order_filtered_by_field_and_limited() -> None:
    assert keys(search(INDEX, "")) == ["k1", "k2", "k3", "k4", "k5"]
    assert keys(search(INDEX, "  ", field="transport")) == ["k4", "k5"]
    assert keys(search(INDEX, "", limit=2)) == ["k1", "k2"]


def test_given_field_and_limit_when_searching_then_respected() -> None:
    assert keys(search(INDEX, "ở đâu")) == ["k3", "k4"]
    assert keys(search(INDEX, "ở đâu", field="transport")) == ["k4"]
    assert keys(search(INDEX, "ở đâu", limit=1)) == ["k3"]


def test_given_no_match_then_nothing() -> None:
    assert search(INDEX, "thuế đất") == []


def test_given_repeated_and_punctuated_words_then_each_counted_once() -> None:
    assert query_words("Bệnh, bệnh viện?!") == ("benh", "vien")
