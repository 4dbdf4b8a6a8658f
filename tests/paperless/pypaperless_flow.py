"""pypaperless (from PyPI) against a running docpipe: the calls a Paperless-ngx
client makes. Usage: pypaperless_flow.py URL TOKEN PDF. Prints "OK <id>"."""

import asyncio
import datetime
import sys

from pypaperless import Paperless
from pypaperless.models.common import TaskStatusType


async def main(url: str, token: str, pdf: str) -> None:
    async with Paperless(url, token) as p:
        tag_id = await p.tags.draft(
            name="scans",
            color="#ff0000",
            match="",
            matching_algorithm=0,
            is_insensitive=True,
            is_inbox_tag=False,
        ).save()
        type_id = await p.document_types.draft(
            name="letter", match="", matching_algorithm=0, is_insensitive=True
        ).save()
        tags = [t async for t in p.tags]
        assert [(t.id, t.name) for t in tags] == [(tag_id, "scans")], tags
        types = [t async for t in p.document_types]
        assert (type_id, "letter") in [(t.id, t.name) for t in types], types

        with open(pdf, "rb") as f:
            data = f.read()
        draft = p.documents.draft(
            document=data,
            filename="quokka.pdf",
            title="Quokka field report",
            tags=[tag_id],
            document_type=type_id,
            created=datetime.datetime(2024, 5, 1, 9, 30),
        )
        task_id = await draft.save()
        assert isinstance(task_id, str) and len(task_id) == 36, task_id

        task = None
        for _ in range(600):  # up to 60 s: the server is polled, as clients do
            task = await p.tasks(task_id)
            if task.status in (TaskStatusType.SUCCESS, TaskStatusType.FAILURE):
                break
            await asyncio.sleep(0.1)
        assert task is not None and task.status == TaskStatusType.SUCCESS, (task.status, task.result)
        doc_id = int(task.related_document)
        assert task.result == f"Success. New document id {doc_id} created", task.result

        doc = await p.documents(doc_id)
        assert doc.title == "Quokka field report", doc.title
        assert "quokka" in (doc.content or "").lower(), doc.content
        assert doc.tags == [tag_id], doc.tags
        assert doc.document_type == type_id, doc.document_type
        assert doc.created is not None and doc.created.date() == datetime.date(2024, 5, 1), doc.created
        assert doc.original_file_name == "quokka.pdf", doc.original_file_name

        hits = [d async for d in p.documents.search("quokka")]
        assert [d.id for d in hits] == [doc_id], [d.id for d in hits]
        assert hits[0].has_search_hit and "<b>" in (hits[0].search_hit.highlights or "").lower()

        doc.title = "Quokka field report, revised"
        assert await doc.update()
        again = await p.documents(doc_id)
        assert again.title == "Quokka field report, revised", again.title
        assert again.tags == [tag_id], again.tags

        listed = [d.id async for d in p.documents]
        assert doc_id in listed, listed
        print("OK", doc_id)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
